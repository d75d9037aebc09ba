"""Reads of posts: the queries the views run, in one place."""

from django.db.models import QuerySet

from .models import Post

LIST_FIELDS = ("id", "title", "created_at")


def post_list() -> QuerySet[Post]:
    """Posts newest first, with only the columns the list page shows."""
    return Post.objects.only(*LIST_FIELDS)


def post_detail() -> QuerySet[Post]:
    return Post.objects.all()
