#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from django_pgbouncer.errors import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as error:  # a bad variable: its message, not a traceback
        sys.exit(f"Configuration error: {error}")
