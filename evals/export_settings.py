"""Settings → "Scores to an OpenTelemetry collector": the project's own OTLP endpoint, protocol and headers for the
export of its built-in scores (evals.otel_export). Admins only; the headers are write-only (sealed, never shown
again, kept when the field is left empty). The section sits in the Settings page (evals/templatetags); its form
posts here, and a form with errors comes back on a page of its own."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from pydantic_core import PydanticCustomError

from accounts.access import member_required
from accounts.models import Membership, Project, Role
from evals.models import ExportProtocol
from evals.otel_export import export_settings_reset, export_settings_save, export_test_request
from evals.selectors import score_export_status
from sre4ai_web.lib import outbound
from sre4ai_web.lib.outbound import HEADER_NAME, check_http_url, host_of

# Headers the exporter sets itself (the body's type and size, the host it connects to).
RESERVED_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "host", "transfer-encoding"})
MAX_HEADERS = 20


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value: a form sent back with an error does not echo the headers either."""

    def format_value(self, value: Any) -> str | None:
        return None


def _ip_or_localhost(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ScoreExportForm(forms.Form):
    endpoint = forms.CharField(
        required=False,
        max_length=2000,
        label="OTLP logs endpoint",
        widget=forms.TextInput(attrs={"placeholder": "https://collector.example.com:4318/v1/logs", "size": 60}),
        help_text="Empty: this project's scores are not exported, whatever the server's default. Use https:// "
        "when a header carries a token.",
    )
    protocol = forms.ChoiceField(choices=ExportProtocol.choices, initial=ExportProtocol.PROTOBUF)
    headers = forms.CharField(
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        help_text="One per line, Name: value (e.g. Authorization: Bearer …). Stored encrypted and never shown "
        "again; leave empty to keep the stored ones.",
    )
    clear_headers = forms.BooleanField(required=False, label="Remove the stored headers")

    def clean_endpoint(self) -> str:
        value: str = self.cleaned_data["endpoint"].strip()
        if not value:
            return ""
        try:
            check_http_url(value, what="The endpoint", https_only=False)
        except PydanticCustomError as exc:
            raise forms.ValidationError(f"{exc.message()}, e.g. https://collector.example.com:4318/v1/logs.") from None
        parts = urlsplit(value)
        if parts.username or parts.password:
            raise forms.ValidationError("Put credentials in a header (Authorization: …), not in the endpoint's URL.")
        host = parts.hostname or ""
        # An address (or localhost) is checked now, without a DNS lookup; a name is checked when it is called, and
        # "Send test" shows the outcome.
        if _ip_or_localhost(host):
            try:
                outbound.allowed_addresses(host, parts.port or (443 if parts.scheme == "https" else 80))
            except outbound.OutboundError as exc:
                raise forms.ValidationError(f"The endpoint cannot be called: {exc}.") from None
        return value

    def clean_headers(self) -> dict[str, str] | None:
        """The headers typed (None: none typed, keep the stored ones). Messages name a line, never a value."""
        text: str = self.cleaned_data["headers"]
        if not text.strip():
            return None
        headers: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = (part.strip() for part in line.partition(":"))
            if not sep or not name or not value:
                raise forms.ValidationError(f"Line {number}: write Name: value, e.g. Authorization: Bearer <token>.")
            if not HEADER_NAME.match(name):
                raise forms.ValidationError(f"Line {number}: a header name has letters, digits and - only.")
            if name.lower() in RESERVED_HEADERS:
                raise forms.ValidationError(f"Line {number}: {name} is set by sre4ai itself.")
            if not (value.isascii() and value.isprintable()):
                raise forms.ValidationError(f"Line {number}: the value of {name} must be printable ASCII.")
            headers[name] = value
        if len(headers) > MAX_HEADERS:
            raise forms.ValidationError(f"At most {MAX_HEADERS} headers.")
        return headers

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("clear_headers"):
            if cleaned.get("headers"):
                raise forms.ValidationError("Either type new headers or remove the stored ones, not both.")
            cleaned["headers"] = {}
        return cleaned


def panel_context(*, project: Project, form: ScoreExportForm | None = None) -> dict[str, Any]:
    status = score_export_status(project=project)
    target = status.target
    if form is None:
        initial = {"endpoint": target.endpoint, "protocol": target.protocol} if target else {}
        form = ScoreExportForm(initial=initial, prefix="export")
    return {
        "project": project,
        "status": status,
        "target": target,
        "target_host": host_of(target.endpoint) if target and target.endpoint else "",
        "default_host": host_of(status.default_endpoint) if status.default_endpoint else "",
        "export_form": form,
    }


@member_required(Role.ADMIN, what="change where the project's scores are exported", methods=("POST",))
def score_export_settings(request: HttpRequest, membership: Membership, slug: str) -> HttpResponse:
    project = membership.project
    assert isinstance(request.user, User)  # member_required
    back = reverse("project_settings", args=[slug]) + "#score-export"
    if "reset" in request.POST:
        export_settings_reset(project=project, user=request.user)
        messages.success(request, "Scores now go where the server's default says.")
        return redirect(back)
    if "test" in request.POST:
        try:
            export_test_request(project=project)
        except ValueError as exc:
            messages.error(request, f"Cannot send a test: {exc}.")
        else:
            messages.success(request, "Test queued: the export worker sends it; reload to see the collector's answer.")
        return redirect(back)
    form = ScoreExportForm(request.POST, prefix="export")
    if form.is_valid():
        endpoint = form.cleaned_data["endpoint"]
        export_settings_save(
            project=project,
            endpoint=endpoint,
            protocol=form.cleaned_data["protocol"],
            headers=form.cleaned_data["headers"],
            user=request.user,
        )
        messages.success(
            request, f"Scores now go to {host_of(endpoint)}." if endpoint else "Export of this project's scores is off."
        )
        return redirect(back)
    context = {**panel_context(project=project, form=form), "show": True}
    return render(request, "evals/score_export.html", context, status=400)
