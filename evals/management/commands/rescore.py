"""Rescore a service over a time range as a job row (visible and cancellable on the Rescore page)."""

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from accounts.models import Project
from evals.evaluators.registry import REGISTRY
from evals.jobs import job_run_cancel
from evals.models import EvalRun, RunStatus
from evals.services import eval_run_create, eval_run_drive


def _when(value: str, flag: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"{flag} must be an ISO 8601 time with a timezone, e.g. 2026-11-01T00:00Z; got {value!r}.")
    return parsed


class Command(BaseCommand):
    help = "Run the evaluators again over a service's traces in a time range, with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--service", default="", help="Service name (default: every service).")
        parser.add_argument("--since", required=True, help="ISO 8601 start, e.g. 2026-11-01T00:00Z.")
        parser.add_argument("--until", required=True, help="ISO 8601 end.")
        parser.add_argument("--evaluator", action="append", default=[], help="Only this evaluator (repeatable).")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        unknown = [name for name in options["evaluator"] if name not in REGISTRY]
        if unknown:
            raise CommandError(f"Unknown evaluator(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}.")
        since, until = _when(options["since"], "--since"), _when(options["until"], "--until")
        if since >= until:
            raise CommandError("--since must be before --until.")
        run = eval_run_create(
            project=project,
            service=options["service"],
            since=since,
            until=until,
            evaluators=options["evaluator"],
            user=None,
        )
        self.stdout.write(f"Run {run.pk}: rescoring {run.total} traces (cancel it on the Rescore page or with Ctrl-C).")
        bar = tqdm(total=run.total, unit="trace", disable=options["verbosity"] == 0)

        def progress(current: EvalRun) -> None:
            bar.update(current.done - bar.n)

        try:
            run = eval_run_drive(run=run, on_progress=progress)
        except KeyboardInterrupt:
            run = job_run_cancel(run=run)
        finally:
            bar.close()
        self.stdout.write(f"Run {run.pk} {run.status}: {run.done} of {run.total} traces, {run.failed} errors.")
        if run.status == RunStatus.FAILED:
            raise CommandError(run.error)
