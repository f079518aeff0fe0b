"""Project settings pages: members, API keys, secrets and data retention. Only admins change them; every member
can look."""

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.authentication import OTLP_HEADERS_VARIABLE, otlp_headers_value
from accounts.forms import ApiKeyCreateForm, MemberAddForm, RetentionForm, SecretSetForm
from accounts.models import ApiKey, Project, Role
from accounts.selectors import (
    api_keys_for_project,
    audit_events,
    data_removals,
    members_of,
    membership_for,
    project_secrets,
    projects_for_user,
)
from accounts.services import (
    api_key_issue,
    api_key_revoke,
    membership_set,
    project_redaction_set,
    project_retention_set,
    project_secret_delete,
    project_secret_set,
    user_sessions_revoke,
)
from traces.ingest.gate import ingest_quota

NEW_KEY_SESSION_KEY = "new_api_key"


@login_required
def home(request: HttpRequest) -> HttpResponse:
    project = projects_for_user(user=request.user).first()
    if project is None:
        return render(request, "accounts/no_projects.html")
    return redirect("overview", slug=project.slug)


@login_required
def project_settings(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    is_admin = membership.allows(Role.ADMIN)
    key_form = ApiKeyCreateForm(request.POST or None, prefix="key")
    member_form = MemberAddForm(request.POST or None, prefix="member")
    # A new secret travels to the next GET through the session, popped on display: shown once, and a reload
    # of the result page cannot re-POST and mint a second key.
    new_secret = request.session.pop(NEW_KEY_SESSION_KEY, None) if request.method == "GET" else None
    if new_secret:
        new_secret["otlp_headers"] = f"{OTLP_HEADERS_VARIABLE}={otlp_headers_value(new_secret['secret_key'])}"
    if request.method == "POST":
        if not is_admin:
            return HttpResponseForbidden("Only project admins can change keys and members.")
        assert isinstance(request.user, User)  # login_required
        if "create_key" in request.POST and key_form.is_valid():
            issued = api_key_issue(project=project, name=key_form.cleaned_data["name"], created_by=request.user,
                                   scopes=key_form.cleaned_data["scopes"])  # fmt: skip
            request.session[NEW_KEY_SESSION_KEY] = {
                "public_key": issued.api_key.public_key,
                "secret_key": issued.secret_key,
            }
            return redirect("project_settings", slug=slug)
        elif "set_redaction" in request.POST:
            enabled = request.POST.get("redact_pii") == "1"
            project_redaction_set(project=project, enabled=enabled, actor=request.user)
            messages.success(request, "PII redaction at ingest is " + ("on: spans from now on are stored redacted."
                             if enabled else "off: spans from now on are stored as sent."))  # fmt: skip
            return redirect("project_settings", slug=slug)
        elif "add_member" in request.POST and member_form.is_valid():
            user = get_user_model().objects.get(username=member_form.cleaned_data["username"])
            membership_set(project=project, user=user, role=member_form.cleaned_data["role"], actor=request.user)
            messages.success(request, f"{user.get_username()} is now {member_form.cleaned_data['role']}.")
            return redirect("project_settings", slug=slug)
    return render(
        request,
        "accounts/settings.html",
        {
            "project": project,
            "membership": membership,
            "is_admin": is_admin,
            "keys": api_keys_for_project(project=project),
            "members": members_of(project=project),
            "key_form": key_form,
            "member_form": member_form,
            "new_secret": new_secret,
            "ingest_quota": ingest_quota(project.pk),
        },
    )


@login_required
@require_POST
def api_key_revoke_view(request: HttpRequest, slug: str, key_id: int) -> HttpResponse:
    membership = membership_for(user=request.user, slug=slug)
    if not membership.allows(Role.ADMIN):
        return HttpResponseForbidden("Only project admins can revoke keys.")
    api_key = get_object_or_404(ApiKey, pk=key_id, project=membership.project)
    assert isinstance(request.user, User)  # login_required
    api_key_revoke(api_key=api_key, actor=request.user)
    messages.success(request, f"Key {api_key.public_key} revoked: requests with it now get 403.")
    return redirect("project_settings", slug=slug)


@login_required
def project_secrets_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Secrets for outbound calls: every member sees the names, admins set and delete them, nobody reads a value."""
    membership = membership_for(user=request.user, slug=slug)
    project = membership.project
    is_admin = membership.allows(Role.ADMIN)
    form = SecretSetForm(request.POST if "set_secret" in request.POST else None)
    if request.method == "POST":
        if not is_admin:
            return HttpResponseForbidden("Only project admins can set or delete secrets.")
        assert isinstance(request.user, User)  # login_required
        if "delete_secret" in request.POST:
            name = request.POST["delete_secret"]
            if project_secret_delete(project=project, name=name, actor=request.user):
                messages.success(request, f"Secret {name} deleted: calls that use it now fail until it is set again.")
            return redirect("project_secrets", slug=slug)
        if form.is_valid():
            name = form.cleaned_data["name"]
            project_secret_set(project=project, name=name, value=form.cleaned_data["value"], user=request.user)
            messages.success(request, f"Secret {name} saved. Its value is never shown again.")
            return redirect("project_secrets", slug=slug)
    return render(
        request,
        "accounts/secrets.html",
        {"project": project, "is_admin": is_admin, "secrets": project_secrets(project=project), "form": form},
        status=400 if form.is_bound else 200,
    )


@login_required
@require_POST
def logout_everywhere(request: HttpRequest) -> HttpResponse:
    """Ends every session of the user (other browsers, a forgotten laptop), this one included."""
    assert isinstance(request.user, User)  # login_required
    user_sessions_revoke(user=request.user)
    logout(request)
    messages.success(request, "You are signed out of every session, on every device.")
    return redirect("login")


AUDIT_PAGE_SIZE = 50


@login_required
def audit_log_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Who changed what in the project, newest first; admins only (the log names members and keys)."""
    membership = membership_for(user=request.user, slug=slug)
    if not membership.allows(Role.ADMIN):
        return HttpResponseForbidden("Only project admins can read the audit log.")
    page = Paginator(audit_events(project=membership.project), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/audit.html", {"project": membership.project, "page": page})


def retention_panel_context(*, project: Project, is_admin: bool, form: RetentionForm | None = None) -> dict[str, Any]:
    """The Settings page's data retention section (accounts/templatetags/retention.py), also the page a form with
    errors comes back on."""
    initial = {"raw_retention_days": project.raw_retention_days,
               "aggregate_retention_days": project.aggregate_retention_days}  # fmt: skip
    return {
        "project": project,
        "is_admin": is_admin,
        "retention_form": form or RetentionForm(initial=initial, prefix="retention"),
        "removals": data_removals(project=project) if is_admin else [],
    }


@login_required
@require_POST
def project_retention_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Admins set how long the project keeps raw data and aggregates; the change is audit-logged."""
    membership = membership_for(user=request.user, slug=slug)
    if not membership.allows(Role.ADMIN):
        return HttpResponseForbidden("Only project admins can change data retention.")
    project = membership.project
    assert isinstance(request.user, User)  # login_required
    form = RetentionForm(request.POST, prefix="retention")
    if not form.is_valid():
        context = retention_panel_context(project=project, is_admin=True, form=form)
        return render(request, "accounts/retention.html", context, status=400)
    raw, aggregate = form.cleaned_data["raw_retention_days"], form.cleaned_data["aggregate_retention_days"]
    project_retention_set(project=project, raw_days=raw, aggregate_days=aggregate, actor=request.user)
    messages.success(request, f"Raw data is kept {raw} days and aggregates {aggregate} days: older rows are removed "
                     "within minutes.")  # fmt: skip
    return redirect(reverse("project_settings", args=[slug]) + "#retention")
