"""The five faults the site must survive under load, and what must hold after each.

Each `act` does to the servers what the fault is, while the load runs; each
`check` reads what users got (the samples) and what the servers said (SHOW
POOLS, SHOW STATS, pg_stat_activity, PgBouncer's log) and names what did not
hold. The tests assert that nothing is named; bench.faults prints the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from typing import Any

from ..errors import StackError
from ..load import Sample, recovery_seconds
from ..stack import APP_DB, APP_USER
from .runner import FaultRun, Scenario, Timeline
from .site import FaultSite, pg_ctl
from .watch import posts_locked

__all__ = ["SCENARIOS", "scenario_named"]

# Requests pile up on the lock this long before the fault lands on them.
SETTLE_SECONDS = 0.5
# How long a crashed PostgreSQL stays down before it is started again: long
# enough for PgBouncer to fail a login to it, and so wait server_login_retry.
DOWN_SECONDS = 0.5
# The overload: a pool of 1 whose one server connection waits on a lock this long,
# while the others wait in PgBouncer's queue for QUERY_WAIT_TIMEOUT.
OVERLOAD_SECONDS = 5.0
OVERLOAD_QUERY_WAIT_TIMEOUT = "2"


def _failed_text(samples: Iterable[Sample], limit: int = 5) -> str:
    shown = [
        f"{s.method} {s.path} -> {s.status or s.detail}"
        f"{' ' + repr(s.detail[:80]) if s.status and s.detail else ''}"
        for s in samples
    ]
    more = f" (and {len(shown) - limit} more)" if len(shown) > limit else ""
    return "; ".join(shown[:limit]) + more


def _failures_answered_503(failures: list[Sample]) -> list[str]:
    """Every failure a 503 with Retry-After: never a 500, never a dropped
    connection (a worker killed, a crash)."""
    wrong = [s for s in failures if s.status != 503 or not s.retry_after]
    if not wrong:
        return []
    text = f"{len(wrong)} failed requests were not 503 + Retry-After: "
    return [text + _failed_text(wrong)]


def _in_flight(run: FaultRun, event: str, kind: str | None = None) -> list[Sample]:
    at = run.events[event]
    return [
        s for s in run.samples if s.in_flight(at) and (kind is None or s.kind == kind)
    ]


def _postmaster_started(site: FaultSite) -> str:
    with site.superuser() as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    return str(row[0]) if row else ""


def _app_pool(site: FaultSite) -> Any:
    return next(p for p in site.console("POOLS") if p.database == APP_DB)


def _app_xacts(site: FaultSite) -> int:
    """SHOW STATS's transactions of the site's database; 0 before a new
    PgBouncer has served it (it has no row for it yet)."""
    rows = [s for s in site.console("STATS") if s.database == APP_DB]
    return int(rows[0].total_xact_count) if rows else 0


# --- planned PostgreSQL restart through the maintenance command --------------


def planned_restart(site: FaultSite, timeline: Timeline) -> None:
    """`manage.py pgbouncer_maintenance -- pg_ctl restart`, as an operator runs
    it: PAUSE, the restart, RESUME, with the console user that may PAUSE."""
    timeline.servers["started_before"] = _postmaster_started(site)
    url = site.stack.maintenance_console_url.url()
    timeline.mark("fault")
    try:
        site.manage(
            "pgbouncer_maintenance",  # its default --timeout, as an operator's
            "--",
            *pg_ctl(site.stack, "restart"),
            env={"PGBOUNCER_MAINTENANCE_URL": url},
        )
        timeline.servers["maintenance"] = "exit 0"
    except StackError as error:
        timeline.servers["maintenance"] = str(error)[-400:]
    timeline.mark("done")
    timeline.servers["started_after"] = _postmaster_started(site)
    timeline.servers["paused_after"] = [
        d.paused for d in site.console("DATABASES") if d.name == APP_DB
    ]


def planned_restart_check(run: FaultRun) -> list[str]:
    failures = run.failures()
    problems = []
    if failures:
        problems.append(f"{len(failures)} requests failed: {_failed_text(failures)}")
    if run.servers["maintenance"] != "exit 0":
        problems.append(f"the maintenance command failed: {run.servers['maintenance']}")
    if run.servers["started_after"] == run.servers["started_before"]:
        problems.append("pg_postmaster_start_time() did not change: no restart")
    if run.servers["paused_after"] != [0]:
        problems.append(f"SHOW DATABASES after: paused {run.servers['paused_after']}")
    problems += _waited_through(run, "fault", "done")
    return problems


def _waited_through(run: FaultRun, start: str, end: str) -> list[str]:
    """The fault must have met requests: some started while it lasted."""
    begun = [s for s in run.samples if run.events[start] <= s.start <= run.events[end]]
    if begun:
        return []
    return [f"no request started between {start} and {end}: it proved nothing"]


# --- PgBouncer restarted -------------------------------------------------------


def pgbouncer_restart(site: FaultSite, timeline: Timeline) -> None:
    """devstack's PgBouncer restart: online (-R), the new process taking over the
    old one's sockets."""
    bouncer = site.stack.pgbouncer
    timeline.servers["xacts_before"] = _app_xacts(site)
    old = bouncer.child.process.pid if bouncer.child and bouncer.child.process else 0
    timeline.mark("fault")
    bouncer.restart()
    timeline.mark("done")
    new = bouncer.child.process.pid if bouncer.child and bouncer.child.process else 0
    log = bouncer.log.read_text(errors="replace")
    timeline.servers |= {
        "pids": [old, new],
        "xacts_after": _app_xacts(site),
        "taken_over": "old process killed, resuming work" in log,
    }


def pgbouncer_restarted_check(run: FaultRun) -> list[str]:
    failures = run.failures()
    problems = [f"{len(failures)} failed: {_failed_text(failures)}"] if failures else []
    old, new = run.servers["pids"]
    before, after = run.servers["xacts_before"], run.servers["xacts_after"]
    # A new process counts from zero: SHOW STATS fell.
    if old == new or not after < before:
        problems.append(
            f"PgBouncer not restarted: pids {old} -> {new}, SHOW STATS "
            f"total_xact_count {before} -> {after}"
        )
    if not run.servers["taken_over"]:
        problems.append("PgBouncer's log shows no online restart (-R) takeover")
    problems += _waited_through(run, "fault", "done")
    return problems


# --- every backend terminated ------------------------------------------------


def backends_terminate(site: FaultSite, timeline: Timeline) -> None:
    """Twice, with requests waiting in their queries: pg_terminate_backend() of
    every backend of the site's role."""
    rounds: list[list[tuple[int, str]]] = []
    for n in (1, 2):
        with posts_locked(site, settle=SETTLE_SECONDS), site.superuser() as conn:
            # MATERIALIZED: the planner must not call the terminator before the
            # filter has picked the site's backends (it would end ours too).
            rows = conn.execute(
                "WITH site AS MATERIALIZED (SELECT pid, state FROM pg_stat_activity"
                " WHERE usename = %s AND datname = %s)"
                " SELECT pid, state FROM site WHERE pg_terminate_backend(pid)",
                [APP_USER, APP_DB],
            ).fetchall()
            timeline.mark("fault" if n == 1 else f"terminated-{n}")
        rounds.append([(int(pid), str(state)) for pid, state in rows])
        time.sleep(1.0)
    timeline.events["terminated-1"] = timeline.events["fault"]
    gone = {pid for terminated in rounds for pid, _ in terminated}
    now = site.site_backends()
    timeline.servers |= {
        "terminated": rounds,
        "survivors": sorted(gone & now),
        "backends_after": len(now - gone),
    }


def backends_terminated_check(run: FaultRun) -> list[str]:
    failures = run.failures()
    problems = []
    reads = [s for s in failures if s.kind == "read"]
    if reads:
        problems.append(f"{len(reads)} GETs failed: {_failed_text(reads)}")
    problems += _failures_answered_503([s for s in failures if s.kind == "write"])
    for n, terminated in enumerate(run.servers["terminated"], start=1):
        active = [pid for pid, state in terminated if state == "active"]
        if not active or not _in_flight(run, f"terminated-{n}", "read"):
            problems.append(
                f"termination {n} found no GET in flight ({len(active)} active "
                f"backends of {len(terminated)}): the fault proved nothing"
            )
    if run.servers["survivors"]:
        problems.append(f"backends survived: {run.servers['survivors']}")
    if not run.servers["backends_after"]:
        problems.append("no new backend served the site after the terminations")
    return problems


# --- PostgreSQL killed with SIGKILL, then restarted ---------------------------


def _postmaster(site: FaultSite) -> subprocess.Popen[bytes]:
    child = site.stack.postgres.child
    if child is None or child.process is None:
        raise RuntimeError("the site's PostgreSQL is not running")
    return child.process


def postgres_kill(site: FaultSite, timeline: Timeline) -> None:
    """SIGKILL to the postmaster while requests wait in their queries; started
    again DOWN_SECONDS later by devstack's restart, as make run's monitor does."""
    timeline.servers["server_login_retry"] = site.config_seconds("server_login_retry")
    timeline.servers["started_before"] = _postmaster_started(site)
    postmaster = _postmaster(site)
    with posts_locked(site, settle=SETTLE_SECONDS):
        os.kill(postmaster.pid, signal.SIGKILL)
        timeline.mark("fault")
    postmaster.wait(10)  # reaped, as make run's monitor reaps it
    time.sleep(DOWN_SECONDS)
    site.stack.postgres.restart()  # what make run's monitor does after a crash
    timeline.mark("restarted")
    timeline.servers["started_after"] = _postmaster_started(site)


def postgres_killed_check(run: FaultRun) -> list[str]:
    """Reads are absorbed: the GETs in flight at the kill, and those sent while
    PostgreSQL was away, succeed. Writes cannot be, once PostgreSQL is gone: a
    write in flight at the kill, or sent before the service is back, may fail,
    as a 503 with Retry-After. After the bound, nothing fails."""
    failures = run.failures()
    problems = _failures_answered_503(failures)
    kill, bound = run.events["fault"], run.servers["server_login_retry"] + 1
    outage_end = run.events["restarted"] + bound
    stray = [
        s for s in failures if s.kind != "write" or s.start > outage_end or s.end < kill
    ]
    if stray:
        problems.append(
            f"{len(stray)} failures were not writes in flight during the outage "
            f"(the kill to {bound:g} s after the restart): {_failed_text(stray)}"
        )
    if not _in_flight(run, "fault", "read"):
        problems.append("no GET was in flight at the kill: it proved nothing")
    back = recovery_seconds(run.samples, since=run.events["restarted"])
    if back is None or back > bound:
        problems.append(
            f"service back {back} s after PostgreSQL accepted again; the bound is "
            f"server_login_retry + 1 = {bound:g} s"
        )
    back_at = run.events["restarted"] + (back or 0)
    if not any(
        r.status == "postgres_unreachable" and kill <= r.end and r.start <= back_at
        for r in run.readyz
    ):
        seen = sorted({r.status for r in run.readyz})
        problems.append(f"/readyz never said postgres_unreachable; it said {seen}")
    if run.servers["started_after"] == run.servers["started_before"]:
        problems.append("pg_postmaster_start_time() did not change: no restart")
    return problems


# --- overload -----------------------------------------------------------------


def overload(site: FaultSite, timeline: Timeline) -> None:
    """The pool's one server connection held by a query waiting on a lock for
    OVERLOAD_SECONDS; every other request waits in PgBouncer's queue."""
    with posts_locked(site, settle=0.0):
        timeline.mark("fault")
        time.sleep(1.5)
        pool = _app_pool(site)
        with site.superuser() as conn:
            waits = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
                " AND datname = %s AND wait_event_type = 'Lock'",
                [APP_USER, APP_DB],
            ).fetchone()
        timeline.servers |= {
            "cl_waiting": pool.cl_waiting,
            "sv_active": pool.sv_active,
            "pool_size": next(
                d.pool_size for d in site.console("DATABASES") if d.name == APP_DB
            ),
            "backends_on_lock": int(waits[0]) if waits else 0,
        }
        time.sleep(OVERLOAD_SECONDS - 1.5)
    timeline.mark("released")
    log = site.stack.pgbouncer.log.read_text(errors="replace")
    timeline.servers["query_wait_timeouts"] = log.count("query_wait_timeout")


def overload_check(run: FaultRun) -> list[str]:
    failures = run.failures()
    problems = _failures_answered_503(failures)
    if not any(s.status == 503 for s in failures):
        problems.append("no request was answered 503: the overload proved nothing")
    servers = run.servers
    if servers["cl_waiting"] < 1 or servers["sv_active"] > servers["pool_size"]:
        problems.append(
            f"SHOW POOLS during the overload: cl_waiting {servers['cl_waiting']}, "
            f"sv_active {servers['sv_active']} of a pool of {servers['pool_size']}"
        )
    if servers["query_wait_timeouts"] < 1:
        problems.append("PgBouncer's log names no query_wait_timeout")
    if not any(
        r.status == "pool_saturated"
        and r.end >= run.events["fault"]
        and r.start <= run.events["released"]
        for r in run.readyz
    ):
        seen = sorted({r.status for r in run.readyz})
        problems.append(f"/readyz never said pool_saturated; it said {seen}")
    return problems


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="planned-restart",
        fault="planned PostgreSQL restart through the maintenance command",
        must_show="0 failed",
        act=planned_restart,
        check=planned_restart_check,
    ),
    Scenario(
        name="backends-terminated",
        fault="every backend terminated",
        must_show="0 failed GETs",
        act=backends_terminate,
        check=backends_terminated_check,
    ),
    Scenario(
        name="postgres-killed",
        fault="PostgreSQL killed with SIGKILL, then restarted",
        must_show="failures only among in-flight writes, each a 503; service back "
        "within server_login_retry + 1 s; /readyz said postgres_unreachable",
        act=postgres_kill,
        check=postgres_killed_check,
    ),
    Scenario(
        name="pgbouncer-restarted",
        fault="PgBouncer restarted",
        must_show="0 failed",
        act=pgbouncer_restart,
        check=pgbouncer_restarted_check,
    ),
    Scenario(
        name="overload",
        fault="overload",
        must_show="503s with Retry-After, 0 responses of 500",
        act=overload,
        check=overload_check,
        pgbouncer_variables={
            "DEFAULT_POOL_SIZE": "1",
            "QUERY_WAIT_TIMEOUT": OVERLOAD_QUERY_WAIT_TIMEOUT,
        },
    ),
)


def scenario_named(name: str) -> Scenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    names = ", ".join(s.name for s in SCENARIOS)
    raise KeyError(f"no fault named {name!r}; the faults are {names}")
