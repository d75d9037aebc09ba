"""A prototype of a cheaper list query, for measuring only (bench.harness
--variant ...:DJANGO_SETTINGS_MODULE=bench.settings_list_count_cached): the site's
list page, unchanged but for the paginator's COUNT(*), which each process reuses
for COUNT_TTL seconds instead of asking PostgreSQL on every request.

bench/profile_web.py showed the count at about 14% of a worker's Python time (the
ORM clones and compiles an aggregate query, then a round trip through PgBouncer):
the page shows "Page 1 of N", and N may lag by COUNT_TTL seconds.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.urls import path

from config.urls import urlpatterns as site_urlpatterns
from core.views import PostListView

if TYPE_CHECKING:  # generic in django-stubs, not subscriptable at run time
    _PaginatorBase = Paginator[Any]
else:
    _PaginatorBase = Paginator

COUNT_TTL = 5.0
_counts: dict[str, tuple[float, int]] = {}


class CountCachedPaginator(_PaginatorBase):
    @cached_property
    def count(self) -> int:
        key = getattr(getattr(self.object_list, "model", None), "_meta", None)
        label = str(key) if key is not None else "list"
        now = time.monotonic()
        cached = _counts.get(label)
        if cached is not None and now - cached[0] < COUNT_TTL:
            return cached[1]
        value = int(super().count)
        _counts[label] = (now, value)
        return value


class PostListCountCached(PostListView):
    paginator_class = CountCachedPaginator


# First match wins for "/"; every other URL of the site is unchanged.
urlpatterns = [
    path("", PostListCountCached.as_view(), name="post_list"),
    *site_urlpatterns,
]
