"""The spend budget form (Budgets page)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from accounts.models import Project
from slos.models import Budget, BudgetScope, BudgetWindow, Channel


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=200)
    scope = forms.ChoiceField(label="Budget per", choices=BudgetScope.choices)
    attribute = forms.CharField(
        max_length=200, required=False, help_text="For a trace attribute: its name, e.g. tenant or app.tenant_id."
    )
    value = forms.CharField(
        max_length=200, required=False, help_text="Empty: every service, user or value gets this budget on its own."
    )
    service = forms.CharField(max_length=200, required=False, help_text="Count only this service's traces.")
    window = forms.ChoiceField(choices=BudgetWindow.choices, help_text="The current UTC day, week or month.")
    warning_usd = forms.DecimalField(
        label="Warning (USD)", required=False, min_value=Decimal("0.000001"), max_digits=20, decimal_places=6
    )
    limit_usd = forms.DecimalField(label="Limit (USD)", min_value=Decimal("0.000001"), max_digits=20, decimal_places=6)
    channels = forms.ModelMultipleChoiceField(queryset=Channel.objects.none(), required=False)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["channels"].queryset = Channel.objects.filter(project=project)  # type: ignore[attr-defined]

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if Budget.objects.filter(project=self.project, name=name).exists():
            raise forms.ValidationError(f"This project already has a budget named “{name}”.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope")
        if scope == BudgetScope.ATTRIBUTE and not (data.get("attribute") or "").strip():
            self.add_error("attribute", "Name the attribute whose values get the budget (e.g. tenant).")
        if scope != BudgetScope.ATTRIBUTE and (data.get("attribute") or "").strip():
            self.add_error("attribute", "Only a budget per trace attribute names an attribute.")
        if scope == BudgetScope.SERVICE and (data.get("service") or "").strip():
            self.add_error("service", "A budget per service names its service in “value” (or leave both empty).")
        warning, limit = data.get("warning_usd"), data.get("limit_usd")
        if warning is not None and limit is not None and warning >= limit:
            self.add_error("warning_usd", "The warning must be below the limit.")
        return data
