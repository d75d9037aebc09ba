from django.apps import AppConfig
from django.core.signals import got_request_exception, request_started
from django.db.backends.signals import connection_created


class DjangoPgBouncerConfig(AppConfig):
    name = "django_pgbouncer"
    verbose_name = "PgBouncer"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .creation import creations_install
        from .guard import guard_install, session_state_found, stale_connections_close
        from .middleware import request_exception_note, request_record_install
        from .observe import guard_finding_count, metrics_install

        connection_created.connect(guard_install, dispatch_uid="pgbouncer_guard")
        connection_created.connect(metrics_install, dispatch_uid="pgbouncer_metrics")
        # What each request ran, for BackendLossMiddleware (middleware.py).
        connection_created.connect(
            request_record_install, dispatch_uid="pgbouncer_request_record"
        )
        got_request_exception.connect(
            request_exception_note, dispatch_uid="pgbouncer_request_exception"
        )
        session_state_found.connect(
            guard_finding_count, dispatch_uid="pgbouncer_guard_metrics"
        )
        request_started.connect(
            stale_connections_close, dispatch_uid="pgbouncer_stale_connections"
        )
        # Test runners create, copy and drop test databases over the pooled aliases,
        # which PgBouncer's kept server connections would block (creation.py).
        creations_install()
