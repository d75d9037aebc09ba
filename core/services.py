"""Writes of posts."""

from django.db import transaction

from .models import Post

DEMO_TITLE = "Demo post {n}"


def demo_posts_seed(*, count: int, if_empty: bool = False) -> int:
    """Create the demo posts 1..count that are missing; return how many were made."""
    if count < 0:
        raise ValueError("count must be 0 or more")
    with transaction.atomic():
        if if_empty and Post.objects.exists():
            return 0
        wanted = {DEMO_TITLE.format(n=n): n for n in range(1, count + 1)}
        present = set(
            Post.objects.filter(title__in=wanted).values_list("title", flat=True)
        )
        missing = sorted((n, t) for t, n in wanted.items() if t not in present)
        Post.objects.bulk_create(
            Post(title=title, content=f"The body of demo post number {n}.\n\n" * 3)
            for n, title in missing
        )
    return len(missing)
