"""`python -m devstack`: run the whole stack (what `make run` calls).

`python -m devstack restart postgres|pgbouncer`: have the running make run restart
one of its servers without stopping the stack (make restart-postgres,
make restart-pgbouncer). PostgreSQL restarts inside `manage.py
pgbouncer_maintenance` (PAUSE, restart, RESUME), so no request fails;
`--no-pause` restarts it bare (what the maintenance command runs). PgBouncer's
processes (DEVSTACK_PGBOUNCER_PROCESSES) restart one at a time."""

import argparse
import os
import sys

# Only what a restart needs at the top: `restart postgres --no-pause` runs inside
# PgBouncer's PAUSE, and loading Django would make every waiting request wait a
# second longer. make run imports the rest when it starts.
from .control import SERVERS, restart_ask, restart_paused
from .errors import StackError
from .folders import root_from_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run the stack (no command), or restart one of its servers.",
    )
    commands = parser.add_subparsers(dest="command")
    restart = commands.add_parser(
        "restart", help="have the running make run restart a server"
    )
    restart.add_argument("server", choices=SERVERS)
    restart.add_argument(
        "--no-pause",
        action="store_true",
        help="PostgreSQL: restart it without PgBouncer's PAUSE (queries in flight "
        "fail); what pgbouncer_maintenance runs while paused",
    )
    return parser


def restart(server: str, *, pause: bool) -> int:
    root = root_from_env(os.environ)
    if server == "postgres" and pause:
        return restart_paused(root, server, os.environ)
    print(restart_ask(root, server), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "restart":
        try:
            return restart(args.server, pause=not args.no_pause)
        except StackError as error:
            print(f"restart {args.server}: {error}", file=sys.stderr)
            return 1
    from django_pgbouncer.errors import ConfigError

    from .run import run

    try:
        return run(os.environ)
    except (StackError, ConfigError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
