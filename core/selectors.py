"""Reads of posts: the queries the views run, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from .models import Post

LIST_FIELDS = ("id", "title", "created_at")
PAGE_SIZE = 20


def post_list() -> QuerySet[Post]:
    """Posts newest first, with only the columns the list page shows."""
    return Post.objects.only(*LIST_FIELDS)


def post_detail() -> QuerySet[Post]:
    return Post.objects.all()


@dataclass(frozen=True)
class PostPage:
    posts: list[Post]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def next_number(self) -> int:
        return self.number + 1

    @property
    def previous_number(self) -> int:
        return self.number - 1


# PostgreSQL's OFFSET and LIMIT are bigints: a larger one is an error, not an
# empty result. No table holds that many rows, so such a page is empty unasked.
BIGINT_MAX = 2**63 - 1


def post_page(*, number: int, size: int = PAGE_SIZE) -> PostPage:
    """Page `number` (from 1) of post_list(), in one query.

    One row more than the page tells whether there is a next page, so no COUNT(*):
    that query cost the list page a fifth of its throughput (bench/results), and it
    reads the whole table, so it grows with it.
    """
    start = (number - 1) * size
    if start + size + 1 > BIGINT_MAX:
        return PostPage(posts=[], number=number, has_next=False)
    rows = list(post_list()[start : start + size + 1])
    return PostPage(posts=rows[:size], number=number, has_next=len(rows) > size)


def post_page_last(*, size: int = PAGE_SIZE) -> PostPage:
    """The last page (the first when there are no posts). It counts the posts, a
    cost paid only by `?page=last`, which no page of the site links to."""
    count = post_list().count()
    return post_page(number=max(1, -(-count // size)), size=size)
