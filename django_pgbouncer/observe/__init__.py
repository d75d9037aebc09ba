"""Seeing the pool: PgBouncer's admin console as typed rows, the pool's state as
operators read it, readiness for probes, and Prometheus metrics."""

from .console import Console, console_command, console_connect, console_show
from .metrics import guard_finding_count, metrics_install, metrics_render
from .pool_state import WAIT_THRESHOLD_SECONDS, PoolState, PoolView, pool_state
from .readiness import Readiness, ReadyStatus, readiness_check
from .replicas import route_count

__all__ = [
    "WAIT_THRESHOLD_SECONDS",
    "Console",
    "PoolState",
    "PoolView",
    "Readiness",
    "ReadyStatus",
    "console_command",
    "console_connect",
    "console_show",
    "guard_finding_count",
    "metrics_install",
    "metrics_render",
    "pool_state",
    "readiness_check",
    "route_count",
]
