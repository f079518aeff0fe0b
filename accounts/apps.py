import time
from typing import Any

from django.apps import AppConfig
from django.http import HttpRequest


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        import sre4ai_web.checks  # noqa: F401  (registers the deployment checks)

        user_logged_in.connect(_stamp_session_generation, dispatch_uid="sre4ai_session_generation")


def _stamp_session_generation(sender: object, request: HttpRequest, user: Any, **kwargs: object) -> None:
    """Every sign-in (login page, admin, test client) records the user's current generation in the new session,
    so "log out everywhere" can tell older sessions apart. Django's own hook, not domain flow."""
    from accounts.selectors import session_generation
    from sre4ai_web.middleware import LAST_SEEN_KEY, SESSION_GENERATION_KEY

    request.session[SESSION_GENERATION_KEY] = session_generation(user_id=user.pk)
    request.session[LAST_SEEN_KEY] = int(time.time())
