"""Spend budgets' evaluation as beat runs it every minute: each budget of the page benchmark's database evaluated
``--minutes`` times a minute apart, from no stored figure (the first evaluation sums the settled traces too;
docs/budgets.md),
in process, for the code of ``--source`` (a git revision, or the working tree).

    .venv/bin/python bench/budgets.py [--db sre4ai_pagebench_1m] [--source worktree|REV] [--minutes 4]

Run ``bench/dashboards.py --setup`` once first: it makes the benchmark's three budgets (per service monthly, per
user daily, per ``tenant`` attribute monthly). Each evaluation writes what beat would (the stored figure, alerts)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PG_BASE_URL, machine, snapshot

MEASURE = """
import json, sys, time
import django
django.setup()
from datetime import timedelta
from django.utils import timezone
from slos.budgets import budget_evaluate
from slos.models import Budget, BudgetSpend
now, out = timezone.now(), []
for budget in Budget.objects.order_by("pk"):
    if hasattr(BudgetSpend, "settled"):  # from nothing settled (older code sums the whole window every minute)
        BudgetSpend.objects.filter(budget=budget).update(settled_until=None)
    times = []
    for minute in range(int(sys.argv[1])):
        started = time.perf_counter()
        budget_evaluate(budget_id=budget.pk, now=now + timedelta(minutes=minute))
        times.append(round((time.perf_counter() - started) * 1000, 1))
    out.append({"budget": f"{budget.scope} {budget.attribute} {budget.window}".replace("  ", " "), "ms": times})
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=os.environ.get("BENCH_LIST_DB", "sre4ai_pagebench_1m"))
    parser.add_argument("--source", default="worktree")
    parser.add_argument("--minutes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = snapshot(Path(tmp) / "src", args.source)
        env = {
            **os.environ,
            "DATABASE_URL": f"{PG_BASE_URL}/{args.db}",
            "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=src, env=env, check=True)
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(args.minutes)], cwd=src, env=env, check=True, capture_output=True
        )
    rows = json.loads(done.stdout.decode().strip().splitlines()[-1])
    print(json.dumps(machine(args.source)))
    for row in rows:
        print(f"{row['budget']:<32} first {row['ms'][0]:>8} ms, then {row['ms'][1:]} ms")


if __name__ == "__main__":
    main()
