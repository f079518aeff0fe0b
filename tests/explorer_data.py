"""Trace rows with chosen values for the trace explorer and the session and user pages (the list reads only the
Trace summary columns, so these are written directly; ingest itself is tested elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.test import Client

from accounts.models import Project
from evals.services import ExternalScore, score_record
from tests.conftest import PASSWORD, Tenant
from traces.models import Trace

T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)


def make_trace(
    project: Project,
    n: int,
    *,
    seconds: float = 0,
    duration_ms: float = 100.0,
    cost: str | None = None,
    tokens: int = 0,
    session: str = "",
    user: str = "",
    service: str = "bot",
    environment: str = "production",
    name: str = "",
    question: str = "",
    answer: str = "",
    status: str = "ok",
) -> Trace:
    start = T0 + timedelta(seconds=seconds)
    return Trace.objects.create(
        project=project,
        trace_id=f"{project.pk:04x}{n:028x}",
        service=service,
        environment=environment,
        name=name or f"op-{n:03d}",
        start_time=start,
        end_time=start + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        status=status,
        error_count=1 if status == "error" else 0,
        span_count=1,
        cost=Decimal(cost) if cost is not None else None,
        total_tokens=tokens,
        session_id=session,
        user_id=user,
        input_preview=question,
        output_preview=answer,
    )


def score(trace: Trace, name: str, *, passed: bool | None, value: float | None = None) -> None:
    score_record(
        score=ExternalScore(
            trace=trace, span=None, name=name, value=value, label="", passed=passed, comment="", external_id=""
        )
    )


def login(client: Client, tenant: Tenant) -> Client:
    assert client.login(username=tenant.user.username, password=PASSWORD)
    return client
