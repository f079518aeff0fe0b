"""Budget test data: native traces with a cost (and a user, a service or a tenant attribute), sent through the
REST API, and budgets made through the service."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.test import Client
from django.utils import timezone

from slos import budgets
from slos.models import Budget
from tests.conftest import Tenant

_ids = {"n": 0}


def trace(
    cost: str, *, user: str = "", service: str = "support-bot", tenant: str = "", start: datetime | None = None
) -> dict[str, Any]:
    _ids["n"] += 1
    n = _ids["n"]
    begin = start or timezone.now() - timedelta(seconds=30)
    span: dict[str, Any] = {
        "span_id": f"{n:016x}",
        "name": "chat",
        "kind": "llm",
        "start_time": begin.isoformat(),
        "end_time": (begin + timedelta(seconds=1)).isoformat(),
        "cost": cost,
    }
    if tenant:
        span["attributes"] = {"tenant": tenant}
    return {"trace_id": f"{n:032x}", "service": service, "user_id": user, "spans": [span]}


def ingest(t: Tenant, traces: list[dict[str, Any]]) -> None:
    response = Client().post(
        "/api/v1/traces", data=json.dumps({"traces": traces}), content_type="application/json", headers=t.bearer
    )
    assert response.status_code == 200, response.content


def budget(t: Tenant, **fields: Any) -> Budget:
    data: dict[str, Any] = {"name": "per user", "scope": "user", "window": "day", "limit_usd": Decimal("1.00")}
    return budgets.budget_create(project=t.project, **{**data, **fields})
