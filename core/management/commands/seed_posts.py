"""Create demo posts, idempotently: running it twice leaves the same posts."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.services import demo_posts_seed


class Command(BaseCommand):
    help = (
        "Create N demo posts ('Demo post 1' ... 'Demo post N') that do not exist yet."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=50)
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when any post exists (what make run uses)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        created = demo_posts_seed(count=options["count"], if_empty=options["if_empty"])
        self.stdout.write(f"created {created} demo posts")
