"""Production settings refuse to start without a real SECRET_KEY, and the deploy check names the development key."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests import ROOT

DEV_KEY = "insecure-dev-key-set-DJANGO_SECRET_KEY-in-production"


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "SRE4AI_HTTPS", "DJANGO_DEBUG")}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "env",
    [
        {"SRE4AI_HTTPS": "1"},
        {"SRE4AI_REQUIRE_SECRET_KEY": "1"},
        {"SRE4AI_HTTPS": "1", "DJANGO_SECRET_KEY": DEV_KEY},
        {"SRE4AI_HTTPS": "1", "DJANGO_SECRET_KEY": "short-key"},
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(env: dict[str, str]) -> None:
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set DJANGO_SECRET_KEY to a random value" in result.stderr


def test_a_real_key_starts_and_the_dev_key_fails_the_deploy_check() -> None:
    assert _manage("check", SRE4AI_HTTPS="1", DJANGO_SECRET_KEY=secrets.token_urlsafe(50)).returncode == 0
    laptop = _manage("check", "--deploy")
    assert laptop.returncode != 0 and "sre4ai.E001" in laptop.stderr + laptop.stdout
