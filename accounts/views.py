"""Project settings pages: key revocation, secrets, the audit log and data retention. Only admins change them;
every member can look. The Settings page itself (keys, members, the ingest quota) is front.views.settings. Also the
home redirect and the new-project form (any signed-in user creates a project and becomes its admin)."""

from typing import Any

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.access import member_required
from accounts.forms import ProjectCreateForm, RetentionForm, SecretSetForm
from accounts.models import ApiKey, Membership, Project, Role
from accounts.selectors import (
    audit_events,
    data_removals,
    project_secrets,
    projects_for_user,
)
from accounts.services import (
    api_key_revoke,
    project_create,
    project_retention_set,
    project_secret_delete,
    project_secret_set,
    user_sessions_revoke,
)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    project = projects_for_user(user=request.user).first()
    if project is None:
        return render(request, "accounts/no_projects.html")
    return redirect("overview", slug=project.slug)


@login_required
def project_create_view(request: HttpRequest) -> HttpResponse:
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        assert isinstance(request.user, User)  # login_required
        project = project_create(slug=form.cleaned_data["slug"], name=form.cleaned_data["name"], owner=request.user)
        messages.success(request, f"Project {project.name} created: send its first trace below.")
        return redirect("overview", slug=project.slug)
    return render(request, "accounts/project_new.html", {"form": form}, status=400 if form.errors else 200)


@member_required(Role.ADMIN, what="revoke keys", methods=("POST",))
def api_key_revoke_view(request: HttpRequest, membership: Membership, slug: str, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey, pk=key_id, project=membership.project)
    assert isinstance(request.user, User)  # member_required
    api_key_revoke(api_key=api_key, actor=request.user)
    messages.success(request, f"Key {api_key.public_key} revoked: requests with it now get 403.")
    return redirect("project_settings", slug=slug)


@member_required(Role.ADMIN, what="set or delete secrets", writes_only=True)
def project_secrets_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    """Secrets for outbound calls: every member sees the names, admins set and delete them, nobody reads a value."""
    project = membership.project
    is_admin = membership.allows(Role.ADMIN)
    form = SecretSetForm(request.POST if "set_secret" in request.POST else None)
    if request.method == "POST":
        assert isinstance(request.user, User)  # member_required
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
    assert isinstance(request.user, User)  # member_required
    user_sessions_revoke(user=request.user)
    logout(request)
    messages.success(request, "You are signed out of every session, on every device.")
    return redirect("login")


AUDIT_PAGE_SIZE = 50


@member_required(Role.ADMIN, what="read the audit log")
def audit_log_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    """Who changed what in the project, newest first; admins only (the log names members and keys)."""
    page = Paginator(audit_events(project=membership.project), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/audit.html", {"project": membership.project, "page": page})


def retention_panel_context(*, project: Project, is_admin: bool, form: RetentionForm | None = None) -> dict[str, Any]:
    """The Settings page's data retention section (accounts/templatetags/retention.py), also the page a form with
    errors comes back on."""
    initial = {
        "raw_retention_days": project.raw_retention_days,
        "aggregate_retention_days": project.aggregate_retention_days,
    }
    return {
        "project": project,
        "is_admin": is_admin,
        "retention_form": form or RetentionForm(initial=initial, prefix="retention"),
        "removals": data_removals(project=project) if is_admin else [],
    }


@member_required(Role.ADMIN, what="change data retention", methods=("POST",))
def project_retention_view(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    """Admins set how long the project keeps raw data and aggregates; the change is audit-logged."""
    project = membership.project
    assert isinstance(request.user, User)  # member_required
    form = RetentionForm(request.POST, prefix="retention")
    if not form.is_valid():
        context = retention_panel_context(project=project, is_admin=True, form=form)
        return render(request, "accounts/retention.html", context, status=400)
    raw, aggregate = form.cleaned_data["raw_retention_days"], form.cleaned_data["aggregate_retention_days"]
    project_retention_set(project=project, raw_days=raw, aggregate_days=aggregate, actor=request.user)
    messages.success(
        request, f"Raw data is kept {raw} days and aggregates {aggregate} days: older rows are removed within minutes."
    )
    return redirect(reverse("project_settings", args=[slug]) + "#retention")
