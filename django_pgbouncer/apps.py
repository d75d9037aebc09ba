from django.apps import AppConfig
from django.db.backends.signals import connection_created


class DjangoPgBouncerConfig(AppConfig):
    name = "django_pgbouncer"
    verbose_name = "PgBouncer"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .guard import guard_install

        connection_created.connect(guard_install, dispatch_uid="django_pgbouncer")
