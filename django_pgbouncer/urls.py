"""Mount these in the project's urls.py:

path("admin/pgbouncer/", include("django_pgbouncer.dashboard_urls")),  # before admin/
path("", include("django_pgbouncer.urls")),   # /healthz, /readyz, /metrics
"""

from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
