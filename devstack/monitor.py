"""make run's watch over its servers, once they are up.

- A restart asked for (devstack.control) is done here, so it is never mistaken
  for a crash.
- A PostgreSQL or PgBouncer that exits unasked has crashed: it is started again,
  with a message, at most RESTART_LIMIT times within RESTART_WINDOW seconds; one
  more crash in that window stops the stack, naming the log to read.
- gunicorn exiting stops the stack. Its master already restarts workers that die,
  so a dead master is a broken start (the code, the configuration), which a
  restart would only repeat.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from .control import POLL_SECONDS, Request, reply_write, requests_take
from .errors import StackError
from .pgbouncer import PgBouncer
from .process import Child
from .records import servers_record
from .stack import Stack

__all__ = ["RESTART_LIMIT", "RESTART_WINDOW", "Monitor"]

RESTART_LIMIT = 3
RESTART_WINDOW = 60.0
# After a restart that failed, the next try waits this long (a loop of failed
# starts would otherwise use up the limit within a second).
RETRY_PAUSE = 1.0


def exit_describe(code: int | None) -> str:
    """Popen's returncode in words: 'exit 1', 'killed by SIGKILL'."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


@dataclass
class Server:
    """PostgreSQL or PgBouncer as the monitor sees it: its process, how to restart
    it, and its recent crash restarts."""

    name: str
    child: Callable[[], Child | None]
    restart: Callable[[], None]
    log: Path
    crashes: deque[float] = field(default_factory=deque)

    def crashed(self) -> int | None:
        """Its exit status, if it exited (None: it runs)."""
        child = self.child()
        return None if child is None else child.exited()

    def crash_count(self, now: float) -> int:
        """Crash restarts within the window, this one included."""
        while self.crashes and now - self.crashes[0] > RESTART_WINDOW:
            self.crashes.popleft()
        self.crashes.append(now)
        return len(self.crashes)


def _process_server(process: PgBouncer) -> Server:
    """One PgBouncer process of several, restarted alone after a crash."""
    name = process.child.name if process.child else "PgBouncer"
    return Server(name, lambda: process.child, process.restart, process.log)


class Monitor:
    """Watches `stack` and `web`; serves restart requests; never returns."""

    def __init__(self, stack: Stack, web: Child) -> None:
        self.stack, self.web, self.root = stack, web, stack.settings.root
        bouncers = stack.pgbouncer
        # What a restart is asked of: PgBouncer is all its processes, in turn.
        self.servers = {
            "postgres": Server(
                "PostgreSQL",
                lambda: stack.postgres.child,
                stack.postgres.restart,
                stack.postgres.log,
            ),
            "pgbouncer": Server(
                "PgBouncer", lambda: bouncers.child, bouncers.restart, bouncers.log
            ),
        }
        # What is watched for crashes: each PgBouncer process on its own.
        self.watched = [self.servers["postgres"]]
        if bouncers.count == 1:
            self.watched.append(self.servers["pgbouncer"])
        else:
            self.watched += [_process_server(p) for p in bouncers.processes]

    def record(self) -> None:
        children = [self.stack.postgres.child, *self.stack.pgbouncer.children]
        servers_record(self.root, [*children, self.web])

    def watch(self) -> NoReturn:
        while True:
            for request in requests_take(self.root):
                self._request_serve(request)
            if self.web.exited() is not None:
                raise StackError(
                    f"gunicorn stopped unexpectedly ({exit_describe(self.web.exited())}"
                    f"); see its log: {self.web.log}. Stopping the rest."
                )
            for server in self.watched:
                code = server.crashed()
                if code is not None:
                    self._crash_restart(server, code)
            time.sleep(POLL_SECONDS)

    def _restart(self, server: Server) -> float:
        """Restart `server`; the seconds it took."""
        started = time.monotonic()
        server.restart()
        self.record()
        return time.monotonic() - started

    def _request_serve(self, request: Request) -> None:
        server = self.servers.get(request.server)
        if server is None:
            reply_write(self.root, request, ok=False, message=f"no {request.server}")
            return
        print(f"{server.name}: restart asked for; restarting ...", flush=True)
        try:
            seconds = self._restart(server)
        except StackError as error:
            print(f"{server.name} did not restart: {error}", flush=True)
            reply_write(self.root, request, ok=False, message=str(error))
            return
        child = server.child()
        message = (
            f"{server.name} restarted in {seconds:.1f} s (pid "
            f"{child.pid if child else '?'})."
        )
        print(message, flush=True)
        reply_write(self.root, request, ok=True, message=message)

    def _crash_restart(self, server: Server, code: int) -> None:
        count = server.crash_count(time.monotonic())
        if count > RESTART_LIMIT:
            raise StackError(
                f"{server.name} stopped unexpectedly ({exit_describe(code)}), the "
                f"{count}th time within {RESTART_WINDOW:.0f} s; not restarting it "
                f"again. See its log: {server.log}. Stopping the rest."
            )
        print(
            f"{server.name} stopped unexpectedly ({exit_describe(code)}); restarting "
            f"it (crash restart {count} of at most {RESTART_LIMIT} within "
            f"{RESTART_WINDOW:.0f} s). Its log: {server.log}",
            flush=True,
        )
        try:
            seconds = self._restart(server)
        except StackError as error:
            print(f"{server.name} did not start again: {error}", flush=True)
            time.sleep(RETRY_PAUSE)
            return
        print(f"{server.name} is back after {seconds:.1f} s.", flush=True)
