"""Replay a CSV of per-minute good/total counts through an SLO's default alert policy (the SRE Workbook's
multiwindow, multi-burn-rate rules scaled to the window) and list when each rule would have fired and cleared.

    manage.py slo_backtest --csv FILE --objective 0.999 --window 30d [--json]

The CSV has the columns minute,good,total (minute: an integer offset from the start; a missing minute has
no events). --json prints a list of {severity, burn_rate_threshold, long_window, short_window, fired_at,
cleared_at} with windows and times in minutes and cleared_at null when still firing at the end.
"""

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from slos.burn import (
    AlertInterval,
    backtest,
    default_policy,
    format_number,
    format_percent,
    format_window,
    objective_errors,
    parse_series_csv,
    parse_window,
    rule_errors,
    slo_window_errors,
)


class Command(BaseCommand):
    help = (
        "Replay per-minute good/total counts from a CSV (columns minute,good,total) through the default "
        "multiwindow, multi-burn-rate alert policy and list when each rule would have fired and cleared."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", required=True, help="CSV file with the columns minute,good,total.")
        parser.add_argument("--objective", required=True, help="Share of good events, e.g. 0.999 for 99.9%%.")
        parser.add_argument("--window", default="30d", help="SLO window: 7d, 28d or 30d (default 30d).")
        parser.add_argument("--json", action="store_true", help="Print the alert intervals as a JSON list.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            objective = Decimal(options["objective"])
        except InvalidOperation:
            raise CommandError(
                f"--objective must be a number between 0 and 1 such as 0.999, got {options['objective']!r}."
            ) from None
        if messages := objective_errors(objective):
            raise CommandError(f"--objective: {' '.join(messages)}")
        try:
            window = parse_window(options["window"])
        except ValueError as exc:
            raise CommandError(f"--window: {exc}.") from None
        if messages := slo_window_errors(window):
            raise CommandError(f"--window: {' '.join(messages)}")

        path = Path(options["csv"])
        if not path.is_file():
            raise CommandError(f"--csv: no such file: {path}")
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                series = parse_series_csv(handle)
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
        except ValueError as exc:
            raise CommandError(f"{path}: {exc}") from None

        rules = default_policy(window)
        for rule in rules:
            # At a low objective the highest possible burn rate can be below a default threshold (at 90%
            # it is 10 < 14.4): such a rule can never fire. Say so, and replay the others.
            for messages in rule_errors(rule, objective=objective, slo_window=window).values():
                self.stderr.write(f"Warning: {rule.describe()}: {' '.join(messages)}")
        intervals = backtest(series, objective, rules)

        if options["json"]:
            self.stdout.write(json.dumps([interval.as_dict() for interval in intervals], indent=2))
            return
        self.stdout.write(self._table(series, objective, window_text=format_window(window), intervals=intervals))

    @staticmethod
    def _table(
        series: list[tuple[int, int]], objective: Decimal, *, window_text: str, intervals: list[AlertInterval]
    ) -> str:
        events = sum(total for _, total in series)
        bad = sum(total - good for good, total in series)
        lines = [
            f"Objective {format_percent(objective)} over {window_text}: {len(series)} minutes, "
            f"{events} events, {bad} bad.",
        ]
        if not intervals:
            lines.append("No rule would have fired.")
            return "\n".join(lines)
        header = ("severity", "threshold", "long", "short", "fired_at", "cleared_at", "duration")
        rows = [header]
        last = len(series)
        for interval in intervals:
            end = interval.cleared_at if interval.cleared_at is not None else last
            rows.append(
                (
                    interval.severity,
                    format_number(interval.burn_rate_threshold),
                    format_window(interval.long_window),
                    format_window(interval.short_window),
                    str(interval.fired_at),
                    str(interval.cleared_at) if interval.cleared_at is not None else "still firing",
                    f"{end - interval.fired_at}m" + ("+" if interval.cleared_at is None else ""),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines.extend(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
        )
        return "\n".join(lines)
