"""The site, plus views that say where their reads went (for
tests/django_pgbouncer/test_routing.py): each answers the value it read, the alias
the router chose and whether that server is a replica (in recovery)."""

from django.db import connections, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from core.models import Post


def _read(key: str) -> dict[str, object]:
    rows = Post.objects.filter(title=key)
    alias = rows.db
    content = rows.values_list("content", flat=True).first()
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        (replica,) = cursor.fetchone()
    return {"content": content, "alias": alias, "replica": replica}


@csrf_exempt
def put(request: HttpRequest, key: str, value: str) -> JsonResponse:
    Post.objects.update_or_create(title=key, defaults={"content": value})
    return JsonResponse(_read(key))


def get(request: HttpRequest, key: str) -> JsonResponse:
    return JsonResponse(_read(key))


def slow(request: HttpRequest, key: str) -> JsonResponse:
    """A read that holds its table `?sleep=` seconds (pg_sleep in the same query)."""
    alias = Post.objects.filter(title=key).db
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT pg_sleep(%s) /* routing_slow */, count(*) FROM core_post",
            [float(request.GET.get("sleep", "1"))],
        )
    return JsonResponse(_read(key))


def bump(request: HttpRequest, key: str) -> JsonResponse:
    """A GET that writes between two reads (a view counter, say)."""
    before = _read(key)
    Post.objects.filter(title=key).update(content="bumped")
    return JsonResponse({"before": before, "after": _read(key)})


def atomic(request: HttpRequest, key: str) -> JsonResponse:
    with transaction.atomic():
        return JsonResponse(_read(key))


urlpatterns = [
    path("routing/put/<slug:key>/<slug:value>", put),
    path("routing/get/<slug:key>", get),
    path("routing/bump/<slug:key>", bump),
    path("routing/slow/<slug:key>", slow),
    path("routing/atomic/<slug:key>", atomic),
    path("", include("config.urls")),
]
