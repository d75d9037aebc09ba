"""Create the site's admin account once, with a generated password shown once."""

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create the superuser USERNAME if missing and print its new password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(
                f"user {username!r} (password shown on the first run; change it with "
                f"`make manage ARGS='changepassword {username}'`)"
            )
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            f"user {username!r}, password {password} (shown this once: keep it)"
        )
