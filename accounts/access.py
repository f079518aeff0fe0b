"""Who may do what: the one permission guard of the pages and the one project lookup of the API.

A page is reached at /p/<slug>/…: `member_required` signs the person in (login_required), finds their membership
of that project (404 for a non-member, who cannot tell the project exists) and answers 403 when their role is
below the one the view needs. An API request carries a project key: `key_project` is the project it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Concatenate, ParamSpec

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_http_methods
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request

from accounts.models import ApiKey, Membership, Project, Role
from accounts.selectors import membership_for

P = ParamSpec("P")
MemberView = Callable[Concatenate[HttpRequest, Membership, P], HttpResponse]


def forbidden(role: str, what: str) -> HttpResponse:
    """The 403 of a member whose role is below ``role``; ``what`` completes "Only … can …"."""
    who = "project admins" if role == Role.ADMIN else "editors and admins"
    return HttpResponseForbidden(f"Only {who} can {what}.")


def member_required(
    role: str = Role.VIEWER, *, what: str = "", writes_only: bool = False, methods: Sequence[str] = ()
) -> Callable[[MemberView[P]], Callable[Concatenate[HttpRequest, P], HttpResponse]]:
    """The view is called as ``view(request, membership, slug=…, …)``. With ``writes_only`` every member may read
    the page and only a write (POST) needs ``role``: the page itself then shows or hides its forms. ``methods``
    limits the HTTP methods (405 otherwise), checked after sign-in and before the project, as Django's
    require_http_methods would be."""
    assert role == Role.VIEWER or what, "say what the role allows: it is the 403's message"

    def decorate(view: MemberView[P]) -> Callable[Concatenate[HttpRequest, P], HttpResponse]:
        @wraps(view)
        def guarded(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            membership = membership_for(user=request.user, slug=str(kwargs["slug"]))
            needs_role = not (writes_only and request.method in SAFE_METHODS)
            if needs_role and not membership.allows(role):
                return forbidden(role, what)
            return view(request, membership, *args, **kwargs)

        return login_required(require_http_methods(list(methods))(guarded) if methods else guarded)

    return decorate


def key_project(request: Request) -> Project:
    """The project of the API key that authenticated ``request`` (HasProjectKey let only such requests in)."""
    return request_key(request).project


def request_key(request: Request) -> ApiKey:
    """The API key that authenticated ``request``."""
    api_key = request.auth
    assert isinstance(api_key, ApiKey)  # guaranteed by HasProjectKey
    return api_key
