"""One fault under load: a private site, the load, /readyz polled, and the fault
acted at a set instant; what users got and what the servers said, kept for the
checks (the tests) and the table (bench.faults)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..load import Load, LoadPlan, Sample, Summary, load_summary
from .site import FaultSite, fault_site
from .watch import ReadyzPoll, ReadyzSample

__all__ = ["FaultRun", "Scenario", "Shape", "Timeline", "scenario_run"]


@dataclass(frozen=True)
class Shape:
    """The load: how many clients read and write, for how long, and when the
    fault comes (seconds after the load starts)."""

    readers: int = 6
    writers: int = 2
    seconds: float = 9.0
    fault_after: float = 3.0


@dataclass
class Timeline:
    """What the fault marks as it acts: instants (time.monotonic()) by name, and
    what the servers reported, by name."""

    events: dict[str, float] = field(default_factory=dict)
    servers: dict[str, Any] = field(default_factory=dict)

    def mark(self, name: str) -> float:
        self.events[name] = time.monotonic()
        return self.events[name]


@dataclass(frozen=True)
class FaultRun:
    """A fault's record: every request, every /readyz answer, the instants, and
    what the servers said."""

    scenario: str
    samples: list[Sample]
    readyz: list[ReadyzSample]
    events: dict[str, float]
    servers: dict[str, Any]
    started: float  # the load's start

    @property
    def summary(self) -> Summary:
        return load_summary(self.samples, fault_at=self.events.get("fault"))

    def at(self, event: str) -> float:
        """Seconds from the load's start to `event`."""
        return round(self.events[event] - self.started, 3)

    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.failed]


Act = Callable[[FaultSite, Timeline], None]
Check = Callable[[FaultRun], list[str]]


@dataclass(frozen=True)
class Scenario:
    """A fault: its row in the issue's table, what it does, and what must hold.

    `act` runs when the fault is due, while the load goes on, and marks "fault"
    (and any other instant); `check` names each thing that did not hold."""

    name: str
    fault: str
    must_show: str
    act: Act
    check: Check
    pgbouncer_variables: Mapping[str, str] = field(default_factory=dict)
    site_variables: Mapping[str, str] = field(default_factory=dict)
    writes: bool = True  # whether logged-in admins write during the fault


def _logs_copy(site: FaultSite, folder: Path) -> None:
    """The servers' logs (gunicorn, PgBouncer, PostgreSQL), for a look after."""
    folder.mkdir(parents=True, exist_ok=True)
    stack = site.stack
    for log in (site.web.log, stack.pgbouncer.log, stack.postgres.log):
        if log.exists():
            shutil.copy(log, folder / log.name)


def scenario_run(
    scenario: Scenario,
    *,
    shape: Shape,
    keep_on_error: bool = False,
    logs_to: Path | None = None,
) -> FaultRun:
    """Run `scenario` on a private site under `shape`'s load, and record it;
    `logs_to`: a folder to copy the servers' logs into before they go."""
    with fault_site(
        f"faults-{scenario.name}-",
        pgbouncer_variables=scenario.pgbouncer_variables,
        site_variables=scenario.site_variables,
        keep_on_error=keep_on_error,
    ) as site:
        plan = LoadPlan(
            host=site.host,
            port=site.port,
            read_paths=site.read_paths,
            readers=shape.readers,
            writers=shape.writers if scenario.writes else 0,
            seconds=shape.seconds,
            login=site.login,
        )
        timeline = Timeline()
        with ReadyzPoll(site) as readyz, Load(plan) as load:
            time.sleep(max(0.0, load.started + shape.fault_after - time.monotonic()))
            scenario.act(site, timeline)
        if logs_to is not None:
            _logs_copy(site, logs_to)
        if "fault" not in timeline.events:
            raise RuntimeError(f"the fault {scenario.name!r} never marked 'fault'")
        return FaultRun(
            scenario=scenario.name,
            samples=load.samples,
            readyz=list(readyz.samples),
            events=dict(timeline.events),
            servers=dict(timeline.servers),
            started=load.started,
        )
