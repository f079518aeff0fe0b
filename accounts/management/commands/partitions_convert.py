from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from sre4ai_web.lib.partition_convert import convert
from sre4ai_web.lib.partitions import is_partitioned, registered


class Command(BaseCommand):
    help = (
        "PostgreSQL: partition by time the span, trace, document, score and rollup tables that still hold data "
        "in the unpartitioned layout (an installation from before partitioning). No row is copied: each old table "
        "becomes the partition of everything before the day after tomorrow; the application keeps running and "
        "writes wait only for the final swap of each table (seconds). Restart web and worker processes afterwards. "
        "See docs/operations.md, 'Partitions'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Only say which tables are not partitioned yet.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("Partitioning is for PostgreSQL; SQLite keeps plain tables.")
        pending = [t for t in registered() if not is_partitioned(t.table)]
        if options["check"]:
            for table in registered():
                state = "not partitioned" if table in pending else "partitioned"
                self.stdout.write(f"{table.table}: {state}")
            return
        if not pending:
            self.stdout.write("Every table is partitioned already.")
            return
        for line in convert(pending, timezone.now(), with_data=True):
            self.stdout.write(line)
