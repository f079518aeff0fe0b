"""The Budgets page: spend against each budget in its current window, the forecast, alerts; editors add budgets."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from accounts.access import member_required
from accounts.models import Membership, Role
from slos import budgets
from slos.budget_forms import BudgetForm
from slos.models import Budget


@member_required(Role.EDITOR, what="define budgets", writes_only=True)
def budget_list(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    form = BudgetForm(project=project)
    status = 200
    if request.method == "POST":
        form = BudgetForm(request.POST, project=project)
        if form.is_valid():
            budgets.budget_create(project=project, **form.cleaned_data)
            messages.success(request, f"Budget “{form.cleaned_data['name']}” added.")
            return redirect("budget_list", slug)
        status = 400
    context = {
        "project": project,
        "statuses": budgets.budget_statuses(project=project, now=timezone.now()),
        "alerts": budgets.recent_alerts(project=project),
        "form": form,
        "can_edit": membership.allows(Role.EDITOR),
    }
    return render(request, "slos/budgets.html", context, status=status)


@member_required(Role.EDITOR, what="delete budgets", methods=("POST",))
def budget_delete(request: HttpRequest, membership: Membership, slug: str, budget_id: int) -> HttpResponse:
    budget = get_object_or_404(Budget, project=membership.project, pk=budget_id)
    budgets.budget_delete(budget=budget)
    messages.success(request, f"Budget “{budget.name}” deleted.")
    return redirect("budget_list", slug)
