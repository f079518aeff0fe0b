"""Recompute rollups from raw traces and scores for a time range (they are derived data)."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max, Min
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from accounts.models import Project
from rollups.services import minutes_recompute
from sre4ai_web.lib.timebuckets import HOUR, floor_hour
from traces.models import Trace


class Command(BaseCommand):
    help = "Rebuild the per-minute and per-hour rollups of a project from raw rows (default: all its data)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--since", help="ISO 8601 start (default: the first trace)")
        parser.add_argument("--until", help="ISO 8601 end (default: the last trace)")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        bounds = Trace.objects.filter(project=project).aggregate(first=Min("start_time"), last=Max("start_time"))
        since = parse_datetime(options["since"]) if options["since"] else bounds["first"]
        until = parse_datetime(options["until"]) if options["until"] else bounds["last"]
        if since is None or until is None:
            self.stdout.write("No traces: nothing to rebuild.")
            return
        if since.tzinfo is None or until.tzinfo is None:
            raise CommandError("--since and --until need a timezone, e.g. 2026-11-01T00:00Z.")
        hours = []
        hour = floor_hour(since)
        while hour <= until:
            hours.append(hour)
            hour += HOUR
        for hour in tqdm(hours, unit="hour", disable=options["verbosity"] == 0):
            minutes_recompute(project_id=project.pk, minutes=[hour + timedelta(minutes=i) for i in range(60)])
        self.stdout.write(f"Rebuilt {len(hours)} hours of rollups for {project.slug}.")
