"""The site, plus views that hold a query open until a test breaks its backend
(for tests/django_pgbouncer/test_middleware.py).

Each view runs `SELECT pg_sleep(...)` tagged with the marker in its URL, so the
test finds that very query in pg_stat_activity. `RUNS` counts the runs of each
marker in this process: a retried request runs twice. A marker's first run sleeps
`sleep` seconds (long: the test ends it), its later runs do not, unless `again`."""

import re
from collections import Counter
from collections.abc import Callable, Iterator

from django.db import connection, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import include, path

from core.models import Post

RUNS: Counter[str] = Counter()
_MARKER = re.compile(r"[a-z0-9_]{1,60}")


def _sleep(request: HttpRequest, marker: str) -> None:
    if not _MARKER.fullmatch(marker):
        raise Http404("markers are [a-z0-9_]")
    RUNS[marker] += 1
    first = RUNS[marker] == 1 or "again" in request.GET
    seconds = float(request.GET.get("sleep", "20")) if first else 0
    with connection.cursor() as cursor:  # the marker is checked above
        cursor.execute(f"SELECT pg_sleep(%s) /* {marker} */", [seconds])


def read(request: HttpRequest, marker: str) -> HttpResponse:
    _sleep(request, marker)
    return HttpResponse(f"read {marker}")


class _LazyRows:
    """Runs its query when the template iterates it: during rendering."""

    def __init__(self, request: HttpRequest, marker: str) -> None:
        self.request, self.marker = request, marker

    def __iter__(self) -> Iterator[str]:
        _sleep(self.request, self.marker)
        return iter(["row"])


def render(request: HttpRequest, marker: str) -> TemplateResponse:
    template = engines["django"].from_string("{% for r in rows %}{{ r }}{% endfor %}")
    return TemplateResponse(request, template, {"rows": _LazyRows(request, marker)})


def write(request: HttpRequest, marker: str) -> HttpResponse:
    RUNS[f"{marker}_write"] += 1
    Post.objects.create(title=marker, content="written by middleware_urls.write")
    _sleep(request, marker)
    return HttpResponse(f"wrote {marker}")


def atomic(request: HttpRequest, marker: str) -> HttpResponse:
    with transaction.atomic():
        _sleep(request, marker)
    return HttpResponse(f"atomic {marker}")


class QueryingMiddleware:
    """A middleware that reads the database itself, before the view: its errors
    never reach process_exception (for the middleware's other path)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        prefix = "/faults/middleware/"
        if request.path.startswith(prefix):
            _sleep(request, request.path.removeprefix(prefix))
            return HttpResponse("middleware")
        return self.get_response(request)


urlpatterns = [
    path("faults/read/<str:marker>", read),
    path("faults/render/<str:marker>", render),
    path("faults/write/<str:marker>", write),
    path("faults/atomic/<str:marker>", atomic),
    path("", include("config.urls")),
]
