import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import user_create


class Command(BaseCommand):
    help = "Create a user without prompts; the password comes from an environment variable."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--password-env",
            default="SRE4AI_PASSWORD",
            help="Environment variable holding the password (default: SRE4AI_PASSWORD).",
        )
        parser.add_argument("--email", default="")
        parser.add_argument("--superuser", action="store_true", help="Also give access to /admin/.")
        parser.add_argument("--if-missing", action="store_true", help="Succeed quietly if the user exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        if get_user_model().objects.filter(username=username).exists():
            if options["if_missing"]:
                return
            raise CommandError(f"User {username!r} already exists.")
        password = os.environ.get(options["password_env"], "")
        if len(password) < 8:
            raise CommandError(f"Set {options['password_env']} to a password of at least 8 characters.")
        user_create(username=username, password=password, email=options["email"], is_superuser=options["superuser"])
        self.stdout.write(f"Created user {username}.")
