"""PostgreSQL's client backends during a run: how many at most, and how much
memory they hold together (from /proc/PID/smaps_rollup).

A pure parser (`smaps_rollup_parse`) and a sampling thread around it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from types import TracebackType

import psycopg

_PIDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = %s "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)
# Memory is read once every this many samples of the count: reading
# smaps_rollup walks a process's page tables, dearer than a query.
MEMORY_EVERY = 10


def smaps_rollup_parse(text: str) -> tuple[int, int]:
    """(Rss, Pss) in KiB from the text of /proc/PID/smaps_rollup."""
    found = dict(re.findall(r"^(Rss|Pss):\s+(\d+) kB$", text, re.MULTILINE))
    if "Rss" not in found or "Pss" not in found:
        raise ValueError(f"no Rss and Pss lines in smaps_rollup:\n{text[:300]}")
    return int(found["Rss"]), int(found["Pss"])


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """The summed (Rss, Pss) of `pids`, skipping those that have exited."""
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        one_rss, one_pss = smaps_rollup_parse(text)
        rss, pss = rss + one_rss, pss + one_pss
    return rss, pss


def max_connections(superuser_url: str) -> int:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
    return int(row[0]) if row else 0


class BackendSampler:
    """Samples the client backends on `dbname` every `interval` seconds from a
    thread, over a superuser connection of its own (`open` it before the load);
    after exit: `peak`, and the peaks of their summed Rss and Pss (KiB)."""

    def __init__(self, superuser_url: str, dbname: str, interval: float = 0.1) -> None:
        self.url, self.dbname, self.interval = superuser_url, dbname, interval
        self.peak = self.peak_rss_kib = self.peak_pss_kib = 0
        self._stop = threading.Event()
        self._conn: psycopg.Connection[tuple[int]] | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        assert self._conn is not None
        tick = 0
        while not self._stop.is_set():
            pids = [int(row[0]) for row in self._conn.execute(_PIDS, [self.dbname])]
            self.peak = max(self.peak, len(pids))
            if tick % MEMORY_EVERY == 0:
                rss, pss = memory_kib(pids)
                self.peak_rss_kib = max(self.peak_rss_kib, rss)
                self.peak_pss_kib = max(self.peak_pss_kib, pss)
            tick += 1
            self._stop.wait(self.interval)

    def open(self) -> None:
        """Connect now: under a load that takes every slot, even a superuser's
        login can be refused while the others' logins are being turned away."""
        if self._conn is None:
            self._conn = psycopg.connect(self.url, autocommit=True)

    def __enter__(self) -> BackendSampler:
        self.open()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
