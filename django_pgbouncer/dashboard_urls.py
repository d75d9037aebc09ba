"""The admin dashboard's URLs; mount them before the admin's own:
`path("admin/pgbouncer/", include("django_pgbouncer.dashboard_urls"))`."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="pgbouncer-dashboard"),
    path("state.json", views.dashboard_state, name="pgbouncer-dashboard-state"),
]
