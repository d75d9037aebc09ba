"""/metrics for several PgBouncer processes on one port: each process's console is
asked as one PgBouncer is (metrics.PgBouncerCollector), its series get a `process`
label (its console's host:port), and the sum over the processes that answered is
added under `process="all"`.

In PromQL, take `{process="all"}` for the whole, or `{process!="all"}` to
aggregate yourself: `sum()` over every series counts each process twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .metrics import PgBouncerCollector
from .pool_state import console_address

__all__ = ["ALL_PROCESSES", "PgBouncerProcessesCollector"]

ALL_PROCESSES = "all"
# Not summed: a version is a label, not a count.
_NOT_SUMMED = frozenset({"pgbouncer_version_info"})


def _labelled(family: Metric, process: str) -> Metric:
    out = Metric(family.name, family.documentation, family.type)
    for sample in family.samples:
        out.add_sample(sample.name, {**sample.labels, "process": process}, sample.value)
    return out


def _summed(families: list[Metric]) -> Metric:
    first = families[0]
    out = Metric(first.name, first.documentation, first.type)
    totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in families:
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            totals[key] = totals.get(key, 0.0) + sample.value
    for (name, labels), value in totals.items():
        out.add_sample(name, {**dict(labels), "process": ALL_PROCESSES}, value)
    return out


class PgBouncerProcessesCollector(Collector):
    """Each process's console (`admin_urls`, one per process), and their sum."""

    def __init__(self, admin_urls: Sequence[str]) -> None:
        self.admin_urls = list(admin_urls)

    def collect(self) -> Iterator[Metric]:
        by_name: dict[str, list[tuple[str, Metric]]] = {}
        for url in self.admin_urls:
            process = console_address(url)
            for family in PgBouncerCollector(url).collect():
                by_name.setdefault(family.name, []).append((process, family))
        for name, families in by_name.items():
            merged = Metric(name, families[0][1].documentation, families[0][1].type)
            for process, family in families:
                merged.samples += _labelled(family, process).samples
            if name not in _NOT_SUMMED:
                merged.samples += _summed([f for _, f in families]).samples
            yield merged
