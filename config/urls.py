from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before admin/: the pool's dashboard lives under the admin, staff only.
    path("admin/pgbouncer/", include("django_pgbouncer.dashboard_urls")),
    path("admin/", admin.site.urls),
    path("", include("django_pgbouncer.urls")),  # /healthz, /readyz, /metrics
    path("", include("core.urls")),
]
