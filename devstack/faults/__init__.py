"""Faults under load, with real servers: the scenarios the fault tests assert on
and bench.faults measures. One module of scenarios, two users."""

from .runner import FaultRun, Scenario, Shape, Timeline, scenario_run
from .scenarios import SCENARIOS, scenario_named
from .site import FaultSite, fault_site

__all__ = [
    "SCENARIOS",
    "FaultRun",
    "FaultSite",
    "Scenario",
    "Shape",
    "Timeline",
    "fault_site",
    "scenario_named",
    "scenario_run",
]
