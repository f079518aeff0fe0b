import math
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import DEFAULT_SCOPES, SECRET_NAME_VALIDATOR, SLUG_VALIDATOR, Project, Role, Scope
from accounts.retention import AGGREGATE_DAYS_MIN, RAW_DAYS_MAX
from accounts.selectors import login_lockout_seconds
from accounts.services import login_failure_record, login_success_record


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What uses this key, e.g. 'support-bot prod'.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        initial=DEFAULT_SCOPES,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one scope (an app that sends traces needs only ingest)."},
        help_text="Apps that send traces need only ingest: a leaked app key then cannot read prompts and answers.",
    )


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Shown in the project menu, e.g. “Support bot”.")
    slug = forms.CharField(
        max_length=63,
        required=False,
        label="Short name",
        help_text="In the project's URLs (/p/short-name/); empty: made from the name.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        name = (data.get("name") or "").strip()
        slug = (data.get("slug") or "").strip() or slugify(name)[:63].strip("-")
        if not name:
            return data
        if not slug:
            self.add_error("slug", "The name has no letters or digits to make a short name from: write one here.")
            return data
        try:
            SLUG_VALIDATOR(slug)
        except forms.ValidationError as exc:
            self.add_error("slug", exc)
            return data
        if Project.objects.filter(slug=slug).exists():
            self.add_error("slug", f"A project named “{slug}” exists already: choose another short name.")
        data["name"], data["slug"] = name, slug
        return data


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if not get_user_model().objects.filter(username=username).exists():
            raise forms.ValidationError(
                f"No user named {username!r}. Create it first: manage.py create_user {username}."
            )
        return username


class SecretSetForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[SECRET_NAME_VALIDATOR],
        help_text="Used as ${NAME} in a probe's headers, or as the key name of a chat-completions probe.",
    )
    # Never rendered back, not even after a form error.
    value = forms.CharField(max_length=10_000, strip=False, widget=forms.PasswordInput(render_value=False))


class RetentionForm(forms.Form):
    """How long a project keeps its raw rows and its aggregates (the Settings section says what each covers)."""

    raw_retention_days = forms.IntegerField(label="Raw data (days)", min_value=1, max_value=RAW_DAYS_MAX)
    aggregate_retention_days = forms.IntegerField(
        label="Aggregates (days)",
        min_value=AGGREGATE_DAYS_MIN,
        max_value=RAW_DAYS_MAX,
        error_messages={
            "min_value": f"Keep aggregates at least {AGGREGATE_DAYS_MIN} days: the longest SLO window (30 days) and "
            "a budget month read them."
        },
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        raw, aggregate = cleaned.get("raw_retention_days"), cleaned.get("aggregate_retention_days")
        if raw is not None and aggregate is not None and aggregate < raw:
            self.add_error(
                "aggregate_retention_days",
                f"Keep aggregates at least as long as raw data ({raw} days): they are computed from it.",
            )
        return cleaned


def client_address(request: HttpRequest) -> str:
    """The connecting address, or, behind a reverse proxy, the last entry of the header the operator named (what
    their own proxy appended: anything before it the client could have written)."""
    forwarded = request.headers.get(settings.SRE4AI_CLIENT_IP_HEADER, "") if settings.SRE4AI_CLIENT_IP_HEADER else ""
    return forwarded.split(",")[-1].strip() or request.META.get("REMOTE_ADDR", "")


def lockout_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (
        f"Too many failed sign-ins for this account or from this address: try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}."
    )


class ThrottledLoginMixin:
    """Refuses sign-in while the username or the client address is locked out, and counts failures. Mixed into
    the login page's form and the admin's, so neither door can be used to guess passwords."""

    request: Any  # AuthenticationForm's
    cleaned_data: dict[str, Any]
    user_cache: Any

    def clean(self) -> dict[str, Any]:
        username, ip, now = self.cleaned_data.get("username") or "", client_address(self.request), timezone.now()
        if wait := login_lockout_seconds(username=username, ip=ip, now=now):
            raise forms.ValidationError(lockout_message(wait), code="locked")
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            if self.user_cache is None:  # a wrong password, not an inactive or non-staff account
                login_failure_record(username=username, ip=ip, now=now)
                if wait := login_lockout_seconds(username=username, ip=ip, now=now):
                    raise forms.ValidationError(lockout_message(wait), code="locked") from None
            raise
        if self.user_cache is not None:
            login_success_record(username=username)
        return cleaned


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
