from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Project
from accounts.services import project_create


class Command(BaseCommand):
    help = "Create a project; --owner makes an existing user its admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--owner", default=None, help="Username of the project's first admin.")
        parser.add_argument("--if-missing", action="store_true", help="Succeed quietly if the project exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        if Project.objects.filter(slug=slug).exists():
            if options["if_missing"]:
                return
            raise CommandError(f"Project {slug!r} already exists.")
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"No user {options['owner']!r}: create it with create_user first.")
        try:
            project_create(slug=slug, name=options["name"], owner=owner)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"Created project {slug}.")
