"""The site's settings with the routing test views' URLconf, for gunicorn in
tests/django_pgbouncer/test_routing.py. The replicas come from the environment
(REPLICA_DATABASE_URLS), as in any deployment."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "tests.django_pgbouncer.routing_urls"
