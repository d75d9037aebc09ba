"""The site's settings with the fault views' URLconf, for gunicorn in
tests/django_pgbouncer/test_middleware.py. BACKEND_LOSS_MIDDLEWARE=0 takes the
middleware out, to show the harm it prevents."""

import os

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE

ROOT_URLCONF = "tests.django_pgbouncer.middleware_urls"
# The app's middleware as it ships, in place of the site's subclass (which adds POST).
MIDDLEWARE = [
    "django_pgbouncer.middleware.BackendLossMiddleware"
    if m.endswith("BackendLossMiddleware")
    else m
    for m in MIDDLEWARE
]
if os.environ.get("BACKEND_LOSS_MIDDLEWARE") == "0":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.endswith("BackendLossMiddleware")]
