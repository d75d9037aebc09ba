from django.apps import AppConfig


class DjangoPgBouncerConfig(AppConfig):
    name = "django_pgbouncer"
    verbose_name = "PgBouncer"
