"""`python -m devstack`: run the whole stack (what `make run` calls)."""

import os
import sys

from django_pgbouncer.errors import ConfigError

from .errors import StackError
from .run import run


def main() -> int:
    try:
        return run(os.environ)
    except (StackError, ConfigError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
