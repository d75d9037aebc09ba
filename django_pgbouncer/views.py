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
from .observe import metrics_render, pool_state, readiness_check

__all__ = ["dashboard", "dashboard_state", "healthz", "metrics", "readyz"]


def _admin_url() -> str | None:
    return app_settings().admin_url


def _conninfo(alias: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    return alias_conninfo(connections[alias].settings_dict)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no database."""
    return JsonResponse({"status": "alive"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when a query goes through; 503 with the reason otherwise."""
    result = readiness_check(conninfo=_conninfo(), admin_url=_admin_url())
    return JsonResponse(result.as_dict(), status=result.http_status)


def _metrics_allowed(request: HttpRequest) -> bool:
    token = app_settings().metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: a bearer token (METRICS_TOKEN), or loopback only."""
    if not _metrics_allowed(request):
        response = HttpResponse(
            "metrics need 'Authorization: Bearer <METRICS_TOKEN>' (or, with no "
            "METRICS_TOKEN set, a request from loopback)\n",
            status=401 if app_settings().metrics_token else 403,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(metrics_render(_admin_url()), content_type=CONTENT_TYPE_LATEST)


@never_cache
def _dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "PgBouncer",
        "state": pool_state(_admin_url()),
    }
    return render(request, "django_pgbouncer/dashboard.html", context)


@never_cache
def _dashboard_state(request: HttpRequest) -> JsonResponse:
    return JsonResponse(pool_state(_admin_url()).as_dict())


# Staff only, through the admin's own login.
dashboard = admin.site.admin_view(_dashboard)
dashboard_state = admin.site.admin_view(_dashboard_state)
