"""Project-key authentication shared by the OTLP endpoints and the REST API.

Accepted forms: ``Authorization: Bearer <secret key>`` and HTTP Basic ``public_key:secret_key``
(what the Langfuse SDKs send). The key decides the project: a key can only write to its own project.
"""

import base64
import binascii
from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts import menus
from accounts.models import ApiKey, Scope
from accounts.selectors import api_key_by_secret, api_key_by_secret_cached

LAST_USED_RESOLUTION = timedelta(minutes=1)


class ProjectKeyError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _credentials(header: str) -> tuple[str | None, str]:
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return None, value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ProjectKeyError(
                401, "Malformed Basic credentials: expected base64 of public_key:secret_key."
            ) from exc
        public, sep, secret = decoded.partition(":")
        if not sep or not secret:
            raise ProjectKeyError(401, "Basic credentials must be public_key:secret_key.")
        return public, secret
    raise ProjectKeyError(
        401, "Unsupported Authorization header: use 'Bearer <secret key>' or Basic public_key:secret_key."
    )


def missing_scope_message(scope: str) -> str:
    return (
        f"This API key lacks the '{scope}' scope ({Scope(scope).label}). Create a key with it under "
        f"{menus.CREATE_API_KEY} (tick {scope}), or: manage.py create_api_key SLUG --scope {scope}."
    )


# The calls made at the app's own rate (ingest, and the guard in its request path) read the key from the
# per-process cache (accounts.selectors.api_key_by_secret_cached), not with a query per call: a key revoked (or its
# scopes changed) in another server process is refused there within SRE4AI_GUARD_CACHE_SECONDS. The other calls
# (reads, SLO changes) read the key on each request.
CACHED_SCOPES = frozenset({Scope.INGEST.value, Scope.GUARD.value})


def authenticate_project_key(request: HttpRequest, *, scope: str) -> ApiKey:
    """Return the active key named by the request if it has ``scope``, or raise ProjectKeyError with 401/403."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise ProjectKeyError(
            401,
            f"Missing API key: send 'Authorization: Bearer <secret key>' (a project admin creates one under "
            f"{menus.CREATE_API_KEY}).",
        )
    public, secret = _credentials(header)
    cached = scope in CACHED_SCOPES
    api_key = api_key_by_secret_cached(secret=secret) if cached else api_key_by_secret(secret=secret)
    if api_key is None or (public is not None and public != api_key.public_key):
        raise ProjectKeyError(401, "Unknown API key: check the secret key (and public key) you configured.")
    if api_key.revoked_at is not None:
        raise ProjectKeyError(403, f"This API key was revoked: create a new one under {menus.CREATE_API_KEY}.")
    if not api_key.allows(scope):
        raise ProjectKeyError(403, missing_scope_message(scope))
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now  # a cached key is not written again for a minute
    return api_key


def _scope_needed(request: Request, view: object) -> str:
    """The scope the view declares for this method (``key_scopes = {"GET": Scope.READ, ...}``). A view or method
    without one is closed to keys: forgetting the declaration fails shut."""
    method = "GET" if request.method in ("HEAD", "OPTIONS") else str(request.method)
    if not hasattr(view, method.lower()):
        raise exceptions.MethodNotAllowed(method)
    scope = getattr(view, "key_scopes", {}).get(method)
    if scope is None:
        raise exceptions.PermissionDenied(f"{request.method} on this endpoint is not open to API keys.")
    return str(scope)


class ProjectKeyAuthentication(BaseAuthentication):
    """DRF authentication: ``request.auth`` is the ApiKey, ``request.user`` stays None. The scope comes from the
    view's ``key_scopes``: a key without it gets a 403 that names the missing scope (``CACHED_SCOPES``: which calls
    read keys from the per-process cache)."""

    def authenticate(self, request: Request) -> tuple[None, ApiKey]:
        view = request.parser_context.get("view") if request.parser_context else None
        try:
            scope = _scope_needed(request, view)
            return None, authenticate_project_key(request._request, scope=scope)
        except ProjectKeyError as exc:
            if exc.status == 403:
                raise exceptions.PermissionDenied(exc.message) from exc
            raise exceptions.AuthenticationFailed(exc.message) from exc

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="sre4ai"'


class HasProjectKey(BasePermission):
    message = "A project API key is required."

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, ApiKey)


class ProjectKeyScheme(OpenApiAuthenticationExtension):
    """Documents project-key auth in the OpenAPI schema (Swagger's Authorize button)."""

    target_class = "accounts.authentication.ProjectKeyAuthentication"
    name = "projectKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Project secret key (sk-sre-…). HTTP Basic public_key:secret_key is also accepted.",
        }


# How an OpenTelemetry SDK sends a key (named alike in Settings & keys, the first-trace panel and the README).
OTLP_HEADERS_VARIABLE = "OTEL_EXPORTER_OTLP_HEADERS"


def otlp_headers_value(secret: str) -> str:
    """The value of OTEL_EXPORTER_OTLP_HEADERS that sends ``secret``; the space of "Bearer <key>" URL-encoded."""
    return f"Authorization=Bearer%20{secret}"
