"""A second database alias on the same test database stands in for a read replica (sre4ai_web/replica.py).

Declared at import, before the test databases are set up, so a test module that imports ``REPLICA`` can name it in
``django_db(databases=…)``."""

from __future__ import annotations

import copy

from django.conf import settings

REPLICA = "replica"
if REPLICA not in settings.DATABASES:
    settings.DATABASES[REPLICA] = {**copy.deepcopy(settings.DATABASES["default"]), "TEST": {"MIRROR": "default"}}
