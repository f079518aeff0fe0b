"""What a rollup recompute costs the worker: `rollups.services.minutes_recompute` of the bench project's minutes of
an hour three hours ago (its minute, hour and, since rollups 0006, day rows), timed in process on a §13/§17
database, for the working tree or a git revision. Rows are recomputed in place (idempotent).

    .venv/bin/python bench/rollup_recompute.py --db sre4ai_pagebench_1m --source 58d29f5 --minutes 1
    .venv/bin/python bench/rollup_recompute.py --db sre4ai_pagebench_1m --minutes 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PG_BASE_URL, REPO, snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sre4ai_pagebench_1m", help="A database built as docs/benchmarks.md §13 says.")
    parser.add_argument("--source", default="worktree", help="Code to measure: 'worktree' or a git revision.")
    parser.add_argument("--minutes", type=int, default=1, help="Dirty minutes recomputed at once (1-60).")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    src = (
        REPO
        if args.source == "worktree"
        else snapshot(Path(tempfile.mkdtemp(prefix="sre4ai-roll-")) / "src", args.source)
    )
    sys.path.insert(0, str(src))
    os.chdir(src)
    os.environ |= {
        "DATABASE_URL": f"{PG_BASE_URL}/{args.db}",
        "DJANGO_SETTINGS_MODULE": "sre4ai_web.settings",
        "SRE4AI_VAR_DIR": os.environ.get("SRE4AI_VAR_DIR", tempfile.mkdtemp(prefix="sre4ai-roll-var-")),
    }
    import django

    django.setup()
    from accounts.models import Project
    from rollups.services import minutes_recompute

    project = Project.objects.get(slug="bench")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    minutes = [hour + timedelta(minutes=i) for i in range(args.minutes)]
    minutes_recompute(project_id=project.pk, minutes=minutes)  # warm-up
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        minutes_recompute(project_id=project.pk, minutes=minutes)
        times.append((time.perf_counter() - started) * 1000)
    print(
        f"{args.source}: minutes_recompute of {args.minutes} minute(s), {args.repeat} runs: "
        f"median {statistics.median(times):.0f} ms, min {min(times):.0f}, max {max(times):.0f}; "
        f"load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
