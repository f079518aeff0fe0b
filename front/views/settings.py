"""The project Settings page: API keys and members (accounts) beside the ingest quota (traces). Only admins
change them; every member can look."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.access import member_required
from accounts.authentication import OTLP_HEADERS_VARIABLE, otlp_headers_value
from accounts.forms import ApiKeyCreateForm, MemberAddForm
from accounts.models import Membership, Role
from accounts.selectors import api_keys_for_project, members_of
from accounts.services import api_key_issue, membership_set, project_redaction_set
from traces.ingest.gate import ingest_quota

NEW_KEY_SESSION_KEY = "new_api_key"


@member_required(Role.ADMIN, what="change keys and members", writes_only=True)
def project_settings(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
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
        assert isinstance(request.user, User)  # member_required
        if "create_key" in request.POST and key_form.is_valid():
            issued = api_key_issue(
                project=project,
                name=key_form.cleaned_data["name"],
                created_by=request.user,
                scopes=key_form.cleaned_data["scopes"],
            )
            request.session[NEW_KEY_SESSION_KEY] = {
                "public_key": issued.api_key.public_key,
                "secret_key": issued.secret_key,
            }
            return redirect("project_settings", slug=slug)
        elif "set_redaction" in request.POST:
            enabled = request.POST.get("redact_pii") == "1"
            project_redaction_set(project=project, enabled=enabled, actor=request.user)
            messages.success(
                request,
                "PII redaction at ingest is "
                + (
                    "on: spans from now on are stored redacted."
                    if enabled
                    else "off: spans from now on are stored as sent."
                ),
            )
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
