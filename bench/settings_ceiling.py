"""Configuration 7 of bench.harness, the ceiling: the site's settings with no
database at all and bench.ceiling's URLs (the pages from rows held in memory).
"""

from __future__ import annotations

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.ceiling"
# Empty: Django falls back to its dummy backend, so any query would fail loudly.
DATABASES = {}
