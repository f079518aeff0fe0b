"""System checks of the deployment (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def dev_secret_key_check(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Django's own check misses the repository's development key (it is long and not 'django-insecure-')."""
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        return [
            Error(
                "SECRET_KEY is the repository's development key.",
                hint="Set DJANGO_SECRET_KEY to a random value of 50+ characters (see docs/security.md).",
                id="sre4ai.E001",
            )
        ]
    return []


@register()
def recovery_timing_check(app_configs: Any, **kwargs: Any) -> list[Warning]:
    """Redis hands a dead worker's message to another after the visibility timeout: the copy must find the dead
    worker's claim on the job lapsed by then, or it returns without doing the job (beat recovers it later)."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if isinstance(visibility, int | float) and visibility <= settings.SRE4AI_CLAIM_SECONDS:
        return [
            Warning(
                f"SRE4AI_BROKER_VISIBILITY_TIMEOUT ({visibility} s) is not longer than SRE4AI_CLAIM_SECONDS "
                f"({settings.SRE4AI_CLAIM_SECONDS:g} s).",
                hint="Keep the visibility timeout well above a claim (defaults: 90 s and 30 s), see docs/operations.md.",
                id="sre4ai.W002",
            )
        ]
    return []
