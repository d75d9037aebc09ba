"""The site's settings under test: config.settings itself, with placeholder URLs.

The session fixtures start PostgreSQL and PgBouncer on free ports and point both
aliases at them (tests/fixtures/stack.py); these placeholders only make the aliases
exist before that.
"""

import os

# Development mode, as before the default turned off: the development key and
# hosts, the guard raising. Subprocesses of the tests inherit it.
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DATABASE_URL", "postgres://app:unset@127.0.0.1:9/app")
os.environ.setdefault("DIRECT_DATABASE_URL", "postgres://app:unset@127.0.0.1:9/app")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins
