"""The site's settings with bench.list_count_cached's list page (a measured
proposal, not a deployment)."""

from __future__ import annotations

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.list_count_cached"
