"""The guard policy page: each service's policy (or the project default) as a validated JSON document."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from pydantic import ValidationError

from accounts.access import member_required
from accounts.models import Membership, Role
from guard.models import GuardPolicy
from guard.policy import CHECKS, DEFAULT_SPEC, PolicySpec
from guard.services import guard_policy_delete, guard_policy_save
from sre4ai_web.lib.validation import pydantic_messages


class _Indented(json.JSONEncoder):
    """The policy in the textarea as the built-in default is shown beside it: one key a line, not one long line."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "indent": 2})


class GuardPolicyForm(forms.Form):
    service = forms.CharField(max_length=200, required=False, help_text="Empty: the project's default policy.")
    spec = forms.JSONField(
        label="Policy",
        encoder=_Indented,
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"}),
        help_text="checks (check, stages, action: block, redact or flag, params), deadline_ms, fail: open or closed.",
    )

    def clean_spec(self) -> PolicySpec:
        data: Any = self.cleaned_data["spec"]
        if not isinstance(data, dict):
            raise forms.ValidationError('The policy must be a JSON object, e.g. {"checks": [...]}.')
        try:
            return PolicySpec.model_validate(data)
        except ValidationError as exc:
            raise forms.ValidationError(pydantic_messages(exc, root="policy")) from None


@member_required(Role.EDITOR, what="change guard policies", writes_only=True)
def guard_policies(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    default_json = json.dumps(DEFAULT_SPEC.model_dump(mode="json"), indent=2)
    form = GuardPolicyForm(initial={"spec": DEFAULT_SPEC.model_dump(mode="json")})
    status = 200
    if request.method == "POST":
        service = request.POST.get("service", "").strip()
        if request.POST.get("delete"):
            guard_policy_delete(project=project, service=service)
            messages.success(request, f"Guard policy of “{service or 'the project'}” removed.")
            return redirect("guard_policies", slug)
        form = GuardPolicyForm(request.POST)
        if form.is_valid():
            guard_policy_save(
                project=project, service=form.cleaned_data["service"].strip(), spec=form.cleaned_data["spec"]
            )
            messages.success(request, "Guard policy saved.")
            return redirect("guard_policies", slug)
        status = 400
    policies = [(p, json.dumps(p.spec, indent=2)) for p in GuardPolicy.objects.filter(project=project)]
    context = {
        "project": project,
        "policies": policies,
        "default_json": default_json,
        "checks": CHECKS,
        "form": form,
        "can_edit": membership.allows(Role.EDITOR),
    }
    return render(request, "guard/policies.html", context, status=status)
