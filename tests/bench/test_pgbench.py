"""bench.pgbench.pgbench_parse: pgbench's report read into numbers."""

import pytest

from bench.pgbench import pgbench_parse

from .captured import sample_read

# Written after pgbench 13's report, which gave tps twice (not captured here).
PGBENCH_13 = """\
number of transactions actually processed: 4000
latency average = 0.512 ms
tps = 1953.125000 (including connections establishing)
tps = 1960.784314 (excluding connections establishing)
"""

FAILED = sample_read("pgbench-direct").replace(
    "failed transactions: 0 (0.000%)", "failed transactions: 12 (0.074%)"
)


@pytest.mark.parametrize(
    ("out", "tps", "latency_ms", "failed"),
    [
        (sample_read("pgbench-direct"), 16554.931856, 0.242, 0),
        (sample_read("pgbench-reconnect"), 212.440008, 18.829, 0),
        (FAILED, 16554.931856, 0.242, 12),
        (PGBENCH_13, 1953.125, 0.512, 0),
    ],
    ids=["direct", "reconnect-per-transaction", "failed-transactions", "pgbench-13"],
)
def test_pgbench_parse_reads_tps_latency_and_failures(out, tps, latency_ms, failed):
    result = pgbench_parse(out)
    assert result.tps == pytest.approx(tps)
    assert result.latency_ms == pytest.approx(latency_ms)
    assert result.failed == failed


def test_pgbench_parse_without_latency_line():
    out = sample_read("pgbench-direct").replace("latency average = 0.242 ms\n", "")
    assert pgbench_parse(out).latency_ms is None


@pytest.mark.parametrize(
    "out",
    [
        "",
        'pgbench: error: connection to server at "127.0.0.1", port 5432 failed: '
        "Connection refused\n",
        sample_read("pgbench-direct").replace("tps = 16554.931856", "tps = nan"),
        sample_read("pgbench-direct").replace("tps = 16554.931856", "tps = 1.2.3"),
    ],
    ids=["empty", "connection-refused", "not-a-number", "two-dots"],
)
def test_pgbench_parse_refuses_malformed_output(out):
    with pytest.raises(ValueError, match="pgbench printed no tps"):
        pgbench_parse(out)
