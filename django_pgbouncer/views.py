"""Health probes, metrics and the admin dashboard: thin views over pure parts."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from django.contrib import admin
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST

from .conf import alias_conninfo, app_settings
from .observe import PoolState, metrics_render, pool_state
from .observe.readiness import readiness_cached

__all__ = [
    "PROXY_HEADERS",
    "caller_is_local",
    "dashboard",
    "dashboard_state",
    "healthz",
    "metrics",
    "readyz",
]

# What a reverse proxy adds to what it relays (RFC 7239's Forwarded, and the
# de facto X-Forwarded-* and X-Real-IP): a request from loopback that carries one
# came from whoever the proxy serves, not from this host.
PROXY_HEADERS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
    "HTTP_VIA",
)


def _admin_url() -> str | None:
    return app_settings().admin_url


def _conninfo(alias: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    return alias_conninfo(connections[alias].settings_dict)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no database."""
    return JsonResponse({"status": "alive"})


def caller_is_local(request: HttpRequest) -> bool:
    """A request from this host itself: from a loopback address, not relayed by a
    proxy (no forwarding header), and no proxy declared in front of the site
    (SECURE_PROXY_SSL_HEADER set), which may relay without saying so."""
    if app_settings().behind_proxy:
        return False
    if any(name in request.META for name in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def _token_given(request: HttpRequest) -> bool:
    token = app_settings().metrics_token
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(
        given.encode(), f"Bearer {token}".encode()
    )


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when a query goes through; 503 otherwise. The status word for
    anyone; the detail (servers, console user, pools) for the METRICS_TOKEN's
    holders and local callers. Checked at most once a second per process."""
    result = readiness_cached(
        conninfo=_conninfo(),
        admin_url=_admin_url(),
        admin_urls=app_settings().admin_urls,
    )
    if _token_given(request) or caller_is_local(request):
        body = result.as_dict()
    else:
        body = {"status": result.status}
    return JsonResponse(body, status=result.http_status)


def _metrics_allowed(request: HttpRequest) -> bool:
    if app_settings().metrics_token:
        return _token_given(request)
    return caller_is_local(request)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: a bearer token (METRICS_TOKEN), or local callers
    only (`caller_is_local`)."""
    if not _metrics_allowed(request):
        response = HttpResponse(
            "metrics need 'Authorization: Bearer <METRICS_TOKEN>' (or, with no "
            "METRICS_TOKEN set, a request from loopback, not through a proxy)\n",
            status=401 if app_settings().metrics_token else 403,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    text = metrics_render(_admin_url(), app_settings().admin_urls)
    return HttpResponse(text, content_type=CONTENT_TYPE_LATEST)


def _pool_state() -> PoolState:
    """The pool, summed over PgBouncer's processes when it has several."""
    return pool_state(_admin_url(), admin_urls=app_settings().admin_urls)


@never_cache
def _dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "PgBouncer",
        "state": _pool_state(),
    }
    return render(request, "django_pgbouncer/dashboard.html", context)


@never_cache
def _dashboard_state(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_pool_state().as_dict())


# Staff only, through the admin's own login.
dashboard = admin.site.admin_view(_dashboard)
dashboard_state = admin.site.admin_view(_dashboard_state)
