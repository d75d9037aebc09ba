"""What bench.harness measures, and how: wrk runs parsed into numbers, the peak of
PostgreSQL's backends, and the CPU time of the database servers.

A pure parser (`wrk_parse`) and thin wrappers around processes.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

WRK = "/usr/bin/wrk"
WRK_TIMEOUT = "10s"
_TICK = os.sysconf("SC_CLK_TCK")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class WrkResult:
    """One wrk run. `rps` counts only 2xx/3xx responses (wrk counts all)."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def wrk_parse(out: str) -> WrkResult:
    """The numbers in wrk's report (run with --latency)."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not done:
        raise ValueError(f"wrk printed no request count:\n{out}")
    requests = int(done.group(1))
    seconds = _ms(done.group(2) + done.group(3)) / 1e3
    percentiles = {
        m.group(1): _ms(m.group(2))
        for m in re.finditer(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", out, re.MULTILINE)
    }
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    socket_errors = sum(int(g) for g in sockets.groups()) if sockets else 0
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non_2xx = int(non.group(1)) if non else 0
    good = max(requests - non_2xx, 0)
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rps=good / seconds if seconds else 0.0,
        p50_ms=percentiles.get("50") if good else None,
        p99_ms=percentiles.get("99") if good else None,
        non_2xx=non_2xx,
        socket_errors=socket_errors,
    )


def wrk_run(url: str, *, clients: int, seconds: int) -> WrkResult:
    """wrk -t2 against a loopback URL, for `seconds`, with `clients` connections."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"benchmarks target 127.0.0.1 only, not {url}")
    argv = [WRK, "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", WRK_TIMEOUT]
    result = subprocess.run(
        [*argv, "--latency", url],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr}")
    return wrk_parse(result.stdout)


def server_drain(host: str, port: int, path: str, *, deadline: float = 120.0) -> None:
    """Wait until the server has worked off the requests wrk left queued (gunicorn
    still answers them after their clients are gone): until three probes in a row
    come back fast, or `deadline` seconds."""
    start = time.monotonic()
    fast = 0
    while fast < 3 and time.monotonic() - start < deadline:
        sent = time.monotonic()
        conn = http.client.HTTPConnection(host, port, timeout=deadline)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
        except OSError:
            time.sleep(0.5)
        finally:
            conn.close()
        fast = fast + 1 if time.monotonic() - sent < 0.3 else 0


def connections_per_process(port: int) -> dict[int, int]:
    """Established connections on the web port, per owning pid (ss -tnp)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counts: dict[int, int] = {}
    for line in out.splitlines():
        for part in line.split("pid=")[1:]:
            pid = int(part.split(",", 1)[0])
            counts[pid] = counts.get(pid, 0) + 1
    return counts


def connections_split(port: int, *, after: float) -> list[int]:
    """Start a timer that, `after` seconds on, fills the returned list with the
    web port's connections per process, largest first: how wrk's keep-alive
    connections landed on the workers."""
    split: list[int] = []

    def sample() -> None:
        counts = connections_per_process(port)
        split.extend(sorted(counts.values(), reverse=True))

    timer = threading.Timer(after, sample)
    timer.daemon = True
    timer.start()
    return split


# --- PostgreSQL's backends: the peak during a run --------------------------------

_BACKENDS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def backends_count(superuser_url: str, dbname: str) -> int:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        row = conn.execute(_BACKENDS, [dbname]).fetchone()
    return int(row[0]) if row else 0


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """utime + stime of `pid` (and of its children it has waited for)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14, 15
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: 16, 17
    return ticks / _TICK


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == parent:  # ppid: field 4
                pids.append(int(entry))
    return pids


def cluster_cpu_seconds(postmaster: int) -> float:
    """The postmaster, its live children, and the children that exited (backends
    of per-request connections end during a run; their time moves to cutime)."""
    return process_cpu_seconds(postmaster, reaped_children=True) + sum(
        process_cpu_seconds(pid) for pid in children_of(postmaster)
    )
