"""What a fault is watched with besides the load: /readyz polled from a thread of
its own, and a lock that makes the site's queries wait, so that a fault finds
requests in flight instead of landing between them by chance."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

import psycopg

from .site import FaultSite

__all__ = ["ReadyzPoll", "ReadyzSample", "posts_locked"]

POLL_SECONDS = 0.1


@dataclass(frozen=True)
class ReadyzSample:
    start: float
    end: float
    http_status: int  # 0: no answer
    status: str  # what /readyz said ("ready", "postgres_unreachable", ...)


class ReadyzPoll:
    """GET /readyz every POLL_SECONDS on a connection of its own, until the block
    ends; `samples` says what it answered and when."""

    def __init__(self, site: FaultSite, *, timeout: float = 10.0) -> None:
        self.site, self.timeout = site, timeout
        self.samples: list[ReadyzSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _once(self, conn: http.client.HTTPConnection) -> ReadyzSample:
        start = time.monotonic()
        try:
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            return ReadyzSample(start, time.monotonic(), 0, type(error).__name__)
        try:
            status = str(json.loads(body)["status"])
        except (ValueError, KeyError, TypeError):
            status = f"unreadable answer ({response.status})"
        return ReadyzSample(start, time.monotonic(), response.status, status)

    def _poll(self) -> None:
        conn = http.client.HTTPConnection(
            self.site.host, self.site.port, timeout=self.timeout
        )
        try:
            while not self._stop.is_set():
                self.samples.append(self._once(conn))
                self._stop.wait(POLL_SECONDS)
        finally:
            conn.close()

    def __enter__(self) -> ReadyzPoll:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 1)

    def said(self, status: str, *, start: float, end: float) -> bool:
        """Whether an answer given between `start` and `end` was `status`."""
        return any(
            s.status == status and s.end >= start and s.start <= end
            for s in self.samples
        )


@contextmanager
def posts_locked(site: FaultSite, *, settle: float) -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on the posts table (every page and every
    write waits on it), wait `settle` seconds for requests to pile up on it, run
    the block, then let go: the block's fault lands on requests in flight."""
    conn = site.superuser()
    try:
        conn.autocommit = False
        conn.execute("LOCK TABLE core_post IN ACCESS EXCLUSIVE MODE")
        time.sleep(settle)
        yield
    finally:
        # The fault may have taken the connection with it (a killed PostgreSQL).
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        conn.close()
