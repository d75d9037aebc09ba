"""What bench.harness asks the stack and the machine: PgBouncer's pool size, a
clean slate of server connections between configurations, versions, and the
commit measured."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import psycopg

from devstack.stack import APP_DB, PROJECT_DIR, Stack
from django_pgbouncer.observe import console_command, console_show

from .measure import WRK, backends_count


def pool_size(stack: Stack) -> dict[str, int]:
    """PgBouncer's limits for the site's pool, from its admin console."""
    rows = {
        item.key: item.value
        for item in console_show(stack.admin_console_url.url(), "CONFIG")
    }
    default, reserve = int(rows["default_pool_size"]), int(rows["reserve_pool_size"])
    return {
        "default_pool_size": default,
        "reserve_pool_size": reserve,
        "max_client_conn": int(rows["max_client_conn"]),
        "limit": default + reserve,
    }


def server_connections_reset(stack: Stack, timeout: float = 15.0) -> None:
    """Close PgBouncer's idle server connections to the site's database and wait
    (up to `timeout`) for the last backend to go, so each configuration's peak is
    its own (they would stay server_idle_timeout, 600 s by default)."""
    console_command(stack.maintenance_console_url.url(), "RECONNECT", APP_DB)
    superuser = stack.postgres.config.superuser_url().url()
    deadline = time.monotonic() + timeout
    left = backends_count(superuser, APP_DB)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = backends_count(superuser, APP_DB)


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown memory"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def machine_describe() -> str:
    return (
        f"nproc {os.cpu_count()}, {_memory()}, {_cpu_model()}, "
        f"Linux {platform.release()}"
    )


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions_describe(stack: Stack) -> str:
    with psycopg.connect(stack.postgres.config.superuser_url().url()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    wrk = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False)
    packages = ("Django", "psycopg", "psycopg-pool", "gunicorn")
    parts = [f"Python {platform.python_version()}"]
    parts += [f"{name} {_package(name)}" for name in packages]
    parts += [
        f"PostgreSQL {row[0] if row else '?'}",
        f"PgBouncer {'.'.join(map(str, stack.pgbouncer.version))}",
        (wrk.stdout or wrk.stderr).split(" Copyright")[0].strip(),
    ]
    return ", ".join(parts)


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def source_describe() -> str:
    """The commit measured, and whether the code differed from it: a result is
    only as honest as the code it names."""
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = _git("status", "--porcelain", "--", ".", ":!bench/results")
    return f"{commit} plus uncommitted changes" if changed else commit
