"""What the web and worker processes do at start: views imported before the first request, and everything loaded
then kept out of the cyclic GC's full passes (measured in docs/benchmarks.md §8 and §4)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests import ROOT


def run(code: str) -> list[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_wsgi_module_imports_the_views_and_freezes_what_is_loaded() -> None:
    before, views, frozen, model = run(
        "import gc, sys; print(gc.get_freeze_count()); import sre4ai_web.wsgi; "
        "print('slos.views' in sys.modules and 'traces.api' in sys.modules, gc.get_freeze_count()); "
        "from evals.evaluators import grounding; print(grounding._model.cache_info().currsize)"
    )
    assert before == "0" and views == "True" and int(frozen) > 100_000 and model == "1"


def test_a_worker_freezes_what_is_loaded_once_ready() -> None:
    before, after = run(
        "import gc; from celery import signals; from sre4ai_web.celery import app; app.loader.import_default_modules(); "
        "print(gc.get_freeze_count()); signals.worker_ready.send(sender=None); print(gc.get_freeze_count())"
    )
    assert before == "0" and int(after) > 100_000
