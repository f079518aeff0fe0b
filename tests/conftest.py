"""Shared fixtures. ``make test`` runs the suite twice: on the real PostgreSQL and Redis, then on the embedded
default that ``make run`` uses (an SQLite file and kombu's filesystem broker). Tests that need PostgreSQL or Redis
are marked ``postgres_only("why")`` and skipped in the SQLite run. The database is always named by DATABASE_URL:
a run without it fails rather than silently writing to ``var/``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations

from accounts.models import ApiKey, AuditEvent, Project, Role, Scope
from accounts.services import api_key_issue, membership_set, project_create, user_create
from sre4ai_web.celery import app as celery_app

PASSWORD = "correct-horse-battery"
# Fixtures shared by several test modules.
pytest_plugins = ["tests.receiver"]
# Test receivers listen on loopback, which outbound calls refuse by default: allow exactly that address, here and
# in the workers the end-to-end tests start (they inherit the environment). tests/lib/test_outbound.py proves the
# refusal without it.
LOOPBACK_ALLOWED = "127.0.0.1"
os.environ["SRE4AI_OUTBOUND_ALLOW"] = LOOPBACK_ALLOWED


@pytest.fixture(autouse=True)
def _loopback_allowed(settings: Any) -> None:
    settings.SRE4AI_OUTBOUND_ALLOW = [LOOPBACK_ALLOWED]


class OneRoundPBKDF2(PBKDF2PasswordHasher):
    """Django's PBKDF2 at one round instead of a million. Each test's user and each login hashed a password: 0.24 s
    of CPU apiece, 28 % of the PostgreSQL pass's test time (1,028 -> 745 s). Same algorithm and format (the round
    count is in the stored hash), so the servers and workers a test starts, on the production settings, verify these
    passwords as they are."""

    iterations = 1


settings.PASSWORD_HASHERS = [f"{__name__}.OneRoundPBKDF2", *settings.PASSWORD_HASHERS]


SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"

# Tables whose trigger refuses DELETE (the audit log is append-only by design): emptied with TRUNCATE.
APPEND_ONLY_TABLES = {AuditEvent._meta.db_table}


def _flush_by_deleting(
    self: PostgresOperations,
    style: Any,
    tables: list[str],
    *,
    reset_sequences: bool = False,
    allow_cascade: bool = False,
) -> list[str]:
    """How a transactional test's database is emptied after it on PostgreSQL: a DELETE per table rather than
    Django's one TRUNCATE of every table, which makes new files for each table and each of its daily partitions
    (0.5-0.8 s a test, a minute and more of the suite). The rows a test leaves are few; the foreign keys Django
    makes are deferred to the commit, so the order does not matter."""
    if reset_sequences:
        return _TRUNCATE(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    return [
        f"{'TRUNCATE' if table in APPEND_ONLY_TABLES else 'DELETE FROM'} {self.quote_name(table)};" for table in tables
    ]


_TRUNCATE = PostgresOperations.sql_flush
PostgresOperations.sql_flush = _flush_by_deleting  # type: ignore[method-assign,assignment]


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("DATABASE_URL"):
        raise pytest.UsageError("Set DATABASE_URL (make test does): tests never use var/db.sqlite3.")


# Fixtures through which a test reaches the database (pytest-django refuses it any other way), and the directory
# of tests that start processes with the pass's DATABASE_URL.
DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
}
PROCESS_TESTS = Path(__file__).parent / "ops"


def reaches_a_database(item: pytest.Item) -> bool:
    if item.get_closest_marker("django_db") is not None:
        return True
    if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    return PROCESS_TESTS in Path(item.fspath).parents


def starts_processes(item: pytest.Item) -> bool:
    """A test that starts servers, workers or a browser (a live server, a committed database for other processes,
    or the process tests): the slow ones."""
    marker = item.get_closest_marker("django_db")
    committed = marker is not None and bool(marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
    uses = set(getattr(item, "fixturenames", ()))
    return committed or bool({"live_server", "transactional_db"} & uses) or PROCESS_TESTS in Path(item.fspath).parents


@pytest.hookimpl(trylast=True)  # after pytest-django's order (database tests, transactional, the others), kept per file
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with tests that start processes run first, and before them those marked ``longest`` (the scale-out
    run, over a minute): make test spreads whole files over its workers, and a slow file dealt last kept one
    worker busy for minutes after the other had finished.

    SRE4AI_DATABASE_TESTS_ONLY=1 (make test's second pass, on SQLite): only the tests that reach a database. The
    others cannot touch one (pytest-django refuses them the connection), so they ran as they would here in the
    first pass, on the same code."""
    if os.environ.get("SRE4AI_DATABASE_TESTS_ONLY") == "1":
        config.hook.pytest_deselected(items=[item for item in items if not reaches_a_database(item)])
        items[:] = [item for item in items if reaches_a_database(item)]
    slow_files = {Path(item.fspath) for item in items if starts_processes(item)}
    longest_files = {Path(item.fspath) for item in items if item.get_closest_marker("longest") is not None}
    # Stable: each file keeps its order.
    items.sort(key=lambda item: (Path(item.fspath) not in longest_files, Path(item.fspath) not in slow_files))


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("postgres_only")
    if marker is None:
        return
    assert marker.args and marker.args[0], f"{item.nodeid}: postgres_only needs a reason"
    if SQLITE:
        pytest.skip(f"PostgreSQL only: {marker.args[0]}")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """On SQLite the test database is a file beside DATABASE_URL's (Django's default is in memory), so the
    processes a test starts (worker, CLI, server) open the same database."""
    database = settings.DATABASES["default"]
    if SQLITE:
        name = Path(database["NAME"])
        database.setdefault("TEST", {})["NAME"] = str(name.with_name(f"test_{name.name}"))


def broker_purge() -> None:
    """Drop the messages queued on the test broker (Redis or the filesystem): no later test's worker runs them."""
    with celery_app.connection_for_write() as connection:
        if settings.CELERY_BROKER_URL.startswith("redis"):
            connection.default_channel.client.flushdb()  # the unacknowledged ones a killed worker left too
            return
        for queue in {route["queue"] for route in celery_app.conf.task_routes.values()} | {"celery"}:
            connection.default_channel.queue_purge(queue)


def broker_queued(queue: str) -> int:
    """Messages waiting in a queue of the test broker (Redis or the filesystem)."""
    with celery_app.connection_for_read() as connection:
        return int(connection.default_channel.queue_declare(queue).message_count)


def database_url() -> str:
    """DATABASE_URL of the test database, for processes a test starts."""
    database = settings.DATABASES["default"]
    if SQLITE:
        return f"sqlite:///{database['NAME']}"
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


@pytest.fixture(scope="session", autouse=True)
def _collected_static() -> None:
    """Pages are tested with the production static storage (hashed manifest), so collect once per run."""
    call_command("collectstatic", interactive=False, verbosity=0)


@dataclass
class Tenant:
    user: User
    project: Project
    api_key: ApiKey
    secret: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def make_tenant(slug: str, username: str, role: str = Role.ADMIN) -> Tenant:
    user = User.objects.filter(username=username).first() or user_create(username=username, password=PASSWORD)
    project = project_create(slug=slug)
    membership_set(project=project, user=user, role=role)
    # Ingest and read, like keys made before scopes existed: most tests send traces and read them back.
    issued = api_key_issue(project=project, name="test", scopes=[Scope.INGEST, Scope.READ])
    return Tenant(user=user, project=project, api_key=issued.api_key, secret=issued.secret_key)


@pytest.fixture
def tenant(db: Any) -> Tenant:
    """Project 'acme' with admin 'alice' and an API key."""
    return make_tenant("acme", "alice")


@pytest.fixture
def other_tenant(db: Any) -> Tenant:
    """Project 'globex' with admin 'bob': what tenant must never see."""
    return make_tenant("globex", "bob")
