"""Security middleware: session idle timeout and revocation ("log out everywhere"), and the
Content-Security-Policy."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

from accounts.selectors import session_generation

# The session's copy of the user's generation, written at sign-in (accounts.apps) and compared on every request.
SESSION_GENERATION_KEY = "sre4ai_session_generation"
LAST_SEEN_KEY = "sre4ai_last_seen"
# The idle deadline (SESSION_COOKIE_AGE from the last request) is pushed forward at most this often: a session row
# write per minute of activity rather than per request.
REFRESH_SECONDS = 60


class SessionSecurityMiddleware:
    """Signs out a session whose generation is older than the user's ("log out everywhere" bumped it), and keeps an
    active session alive: the session expires SESSION_COOKIE_AGE after its last request, not after sign-in."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            if request.session.get(SESSION_GENERATION_KEY, 0) != session_generation(user_id=user.pk):
                logout(request)
            elif (now := int(time.time())) - request.session.get(LAST_SEEN_KEY, 0) >= REFRESH_SECONDS:
                request.session[LAST_SEEN_KEY] = now  # saved with a new expiry date and cookie
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Sends settings.SRE4AI_CSP on every response that has none: scripts only from this origin (no inline script,
    no eval), so text that slips through escaping still cannot run."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.policy = "; ".join(f"{name} {value}" for name, value in settings.SRE4AI_CSP.items())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
