"""The incident page's assignment form: the assignee is one of the project's members, or nobody."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User

from accounts.models import Project


class IncidentAssignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        queryset=User.objects.none(),
        to_field_name="username",
        required=False,
        empty_label="nobody",
        error_messages={
            "invalid_choice": "“%(value)s” is not a member of this project: choose one of its members (or nobody)."
        },
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        members = User.objects.filter(memberships__project=project).order_by("username")
        self.fields["assignee"].queryset = members  # type: ignore[attr-defined]
