"""System checks of the deployment (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register


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
