import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import DEFAULT_SCOPES, Project, Scope
from accounts.services import api_key_issue


class Command(BaseCommand):
    help = "Issue an API key for a project and print the public and secret key (the secret is not stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--json", action="store_true", help='Print {"public_key": ..., "secret_key": ...}.')
        parser.add_argument(
            "--scope",
            action="append",
            choices=Scope.values,
            dest="scopes",
            help="Repeat for several (default: ingest only, for apps). read: trace API, canary and /metrics; "
            "manage: change SLOs through the API.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["slug"]).first()
        if project is None:
            raise CommandError(f"No project {options['slug']!r}: create it with create_project first.")
        issued = api_key_issue(project=project, name=options["name"], scopes=options["scopes"] or DEFAULT_SCOPES)
        if options["json"]:
            self.stdout.write(json.dumps({"public_key": issued.api_key.public_key, "secret_key": issued.secret_key}))
        else:
            self.stdout.write(f"public key: {issued.api_key.public_key}\nsecret key: {issued.secret_key}")
