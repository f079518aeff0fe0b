"""sre4ai_web.lib.sql: AnyOf (one array parameter on PostgreSQL, one JSON text on the embedded SQLite), EpochMinute
and JsonString, on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import DateTimeField, JSONField, Value

from accounts.models import Project
from sre4ai_web.lib.sql import AnyOf, EpochMinute, JsonString
from tests import ROOT


@pytest.mark.postgres_only("checks PostgreSQL's = ANY(array) SQL; the SQLite form has its own test below")
@pytest.mark.django_db
def test_any_of_matches_the_listed_ids_with_one_parameter() -> None:
    projects = [Project.objects.create(name=f"p{i}", slug=f"p{i}") for i in range(4)]
    wanted = [projects[0].pk, projects[2].pk, projects[2].pk, 10**12]  # repeats and unknown ids are harmless
    found = Project.objects.filter(AnyOf("pk", wanted))
    assert sorted(found.values_list("slug", flat=True)) == ["p0", "p2"]
    sql, params = found.query.sql_with_params()
    # one text parameter, not psycopg's element-by-element list (sre4ai_web/lib/sql.py)
    assert "= ANY(%s::int8[])" in sql and list(params) == ["{" + ",".join(map(str, wanted)) + "}"]
    assert not Project.objects.filter(AnyOf("pk", [])).exists()
    assert connection.vendor == "postgresql"


@pytest.mark.postgres_only("the planner's view of the array is PostgreSQL's; SQLite reads the ids as without it")
@pytest.mark.django_db
def test_any_of_unestimated_finds_the_same_rows_with_the_ids_hidden_from_the_planner() -> None:
    projects = [Project.objects.create(name=f"p{i}", slug=f"p{i}") for i in range(4)]
    wanted = [projects[1].pk, projects[3].pk, projects[3].pk, 10**12]
    shown = Project.objects.filter(AnyOf("pk", wanted))
    hidden = Project.objects.filter(AnyOf("pk", wanted, estimated=False))
    assert sorted(hidden.values_list("slug", flat=True)) == sorted(shown.values_list("slug", flat=True)) == ["p1", "p3"]
    assert not Project.objects.filter(AnyOf("pk", [], estimated=False)).exists()
    # Given at run time (an InitPlan), not planned element by element: still through the primary key's index.
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # four rows: the index is the plan to compare, not the scan
        sql, params = hidden.query.sql_with_params()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "InitPlan" in plan and "= ANY ($0)" in plan and "Index" in plan, plan


@pytest.mark.django_db
def test_epoch_minute_is_whole_minutes_since_1970() -> None:
    Project.objects.create(name="p", slug="p")
    stamped = Project.objects.annotate(at=Value(datetime(2026, 11, 27, 9, 43, 59, tzinfo=UTC), DateTimeField()))
    assert stamped.values_list(EpochMinute("at"), flat=True).get() == 29_929_543  # 1,795,772,639 s since 1970


@pytest.mark.django_db
def test_json_string_reads_a_key_only_when_its_value_is_a_string() -> None:
    Project.objects.create(name="p", slug="p")
    metadata = {
        "source": "  faq.md ",
        "url": 5,
        "nested": {"source": "x"},
        "list": ["a"],
        "none": None,
        "empty": "",
        "text": "ünï 💡",
    }
    row = Project.objects.annotate(meta=Value(metadata, JSONField()))
    keys = ["source", "url", "nested", "list", "none", "empty", "text", "missing"]
    found = row.values_list(*(JsonString("meta", key) for key in keys)).get()
    assert found == ("  faq.md ", None, None, None, None, "", "ünï 💡", None)


SQLITE_CHECK = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", "accounts", verbosity=0)
from accounts.models import Project
from sre4ai_web.lib.sql import AnyOf, EpochMinute
a, b, c = (Project.objects.create(name=s, slug=s) for s in "abc")
print(sorted(Project.objects.filter(AnyOf("pk", [a.pk, c.pk, 999])).values_list("slug", flat=True)))
print(Project.objects.filter(AnyOf("pk", [])).count())
print(sorted(Project.objects.filter(AnyOf("pk", [b.pk, 999], estimated=False)).values_list("slug", flat=True)))
print(Project.objects.filter(slug="a").values_list(EpochMinute("created_at"), flat=True).get() == int(a.created_at.timestamp()) // 60)
"""


def test_any_of_works_on_the_embedded_sqlite(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"SRE4AI_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings"})
    done = subprocess.run([sys.executable, "-c", SQLITE_CHECK], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == ["['a', 'c']", "0", "['b']", "True"]
    assert (tmp_path / "db.sqlite3").exists()


@pytest.mark.postgres_only("a PostgreSQL connection setting")
@pytest.mark.django_db
def test_postgresql_connections_never_jit_compile() -> None:
    """The server's default (jit on) spent 1-2 s compiling dashboard aggregates that ran in 50 ms
    (docs/benchmarks.md §13); the app's connections turn it off whatever the server's configuration says."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
