"""The Budgets page: spend against each budget in its current window, the forecast, alerts; editors add budgets."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.selectors import membership_for
from slos import budgets
from slos.budget_forms import BudgetForm
from slos.models import Budget


@login_required
def budget_list(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    form = BudgetForm(project=project)
    status = 200
    if request.method == "POST":
        if not membership.allows(Role.EDITOR):
            return HttpResponseForbidden("Only editors and admins can define budgets.")
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


@login_required
@require_POST
def budget_delete(request: HttpRequest, slug: str, budget_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if not membership.allows(Role.EDITOR):
        return HttpResponseForbidden("Only editors and admins can delete budgets.")
    budget = get_object_or_404(Budget, project=membership.project, pk=budget_id)
    budgets.budget_delete(budget=budget)
    messages.success(request, f"Budget “{budget.name}” deleted.")
    return redirect("budget_list", slug)
