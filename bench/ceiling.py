"""The ceiling: the list and detail pages rendered from posts held in memory.

The same templates, middleware and gunicorn settings as the site, the same context
core.views.PostListView hands its template (a PostPage), and no database: what is
left is the cost of Django and gunicorn alone. Served with
DJANGO_SETTINGS_MODULE=bench.settings_ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse

POSTS_HELD = 200  # as many as the harness seeds
PAGE_SIZE = 20  # core.selectors.PAGE_SIZE


@dataclass(frozen=True)
class MemoryPost:
    """Shaped like core.models.Post for the templates."""

    id: int
    title: str
    content: str
    created_at: datetime

    @property
    def pk(self) -> int:
        return self.id

    def get_absolute_url(self) -> str:
        return reverse("post_detail", kwargs={"pk": self.id})

    def __str__(self) -> str:
        return self.title


def posts_make(count: int) -> list[MemoryPost]:
    """Newest first, as Post.Meta.ordering sorts them."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    posts = [
        MemoryPost(
            id=n,
            title=f"Demo post {n}",
            content=f"The body of demo post number {n}.\n\n" * 3,
            created_at=start + timedelta(minutes=n),
        )
        for n in range(1, count + 1)
    ]
    return sorted(posts, key=lambda p: (p.created_at, p.id), reverse=True)


POSTS = posts_make(POSTS_HELD)
POSTS_BY_ID = {post.id: post for post in POSTS}


def post_list(request: HttpRequest) -> TemplateResponse:
    from core.selectors import PostPage

    raw = request.GET.get("page", "1")
    number = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    start = (number - 1) * PAGE_SIZE
    rows = POSTS[start : start + PAGE_SIZE + 1]
    page = PostPage(
        posts=rows[:PAGE_SIZE],  # type: ignore[arg-type]
        number=number,
        has_next=len(rows) > PAGE_SIZE,
    )
    context = {"page": page, "object_list": page.posts}
    return TemplateResponse(request, "core/post_list.html", context)


def post_detail(request: HttpRequest, pk: int) -> TemplateResponse:
    post = POSTS_BY_ID.get(pk)
    if post is None:
        raise Http404("no such post")
    context = {"object": post, "post": post}
    return TemplateResponse(request, "core/post_detail.html", context)


# Named like core.urls, so the templates' {% url %} and get_absolute_url() resolve.
urlpatterns = [
    path("", post_list, name="post_list"),
    path("posts/<int:pk>/", post_detail, name="post_detail"),
]
