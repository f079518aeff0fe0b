import time
from typing import Any

from django.apps import AppConfig
from django.http import HttpRequest


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_delete, post_save

        import sre4ai_web.checks  # noqa: F401  (registers the deployment checks)
        from accounts.models import ApiKey, Project
        from sre4ai_web.lib.pg_timestamps import use_compiled_timestamps

        connection_created.connect(use_compiled_timestamps, dispatch_uid="sre4ai_compiled_timestamps")

        user_logged_in.connect(_stamp_session_generation, dispatch_uid="sre4ai_session_generation")
        for signal in (post_save, post_delete):
            signal.connect(_forget_key, sender=ApiKey, dispatch_uid=f"sre4ai_forget_key_{signal is post_save}")
            signal.connect(
                _forget_project_keys, sender=Project, dispatch_uid=f"sre4ai_forget_project_keys_{signal is post_save}"
            )


def _stamp_session_generation(sender: object, request: HttpRequest, user: Any, **kwargs: object) -> None:
    """Every sign-in (login page, admin, test client) records the user's current generation in the new session,
    so "log out everywhere" can tell older sessions apart. Django's own hook, not domain flow."""
    from accounts.selectors import session_generation
    from sre4ai_web.middleware import LAST_SEEN_KEY, SESSION_GENERATION_KEY

    request.session[SESSION_GENERATION_KEY] = session_generation(user_id=user.pk)
    request.session[LAST_SEEN_KEY] = int(time.time())


def _forget_key(sender: object, instance: Any, **kwargs: object) -> None:
    """A key saved or deleted in this process (revoked, scopes changed) is looked up afresh by the guard call."""
    from accounts.selectors import API_KEY_CACHE

    API_KEY_CACHE.discard(instance.secret_hash)


def _forget_project_keys(sender: object, instance: Any, **kwargs: object) -> None:
    """The cached keys carry their project: a project saved or deleted drops them."""
    from accounts.selectors import API_KEY_CACHE

    API_KEY_CACHE.discard_where(lambda _, key: key is not None and key.project_id == instance.pk)
