"""bench.fanout's pure parts: its plan, the tiers, the memory parser, the medians
and its targets (no servers, no load)."""

import pytest

from bench.fanout import CONFIGS, fan_plan_parse, socket_errors_parse
from bench.fanout_report import (
    TIERS,
    FanRun,
    Tier,
    cells_of,
    failed_kinds,
    fanout_table,
)
from bench.sampler import smaps_rollup_parse
from bench.targets import fan_targets_evaluate

SMAPS = """55d0c0a00000-7ffd1e5f9000 ---p 00000000 00:00 0                  [rollup]
Rss:               12408 kB
Pss:                3321 kB
Pss_Anon:           1200 kB
Shared_Clean:       8000 kB
"""


def test_smaps_rollup_gives_rss_and_pss():
    assert smaps_rollup_parse(SMAPS) == (12408, 3321)


def test_smaps_rollup_without_pss_is_an_error():
    with pytest.raises(ValueError, match="Rss and Pss"):
        smaps_rollup_parse("Rss:  12 kB\n")


def test_tiers_grow_past_the_pool_and_stay_on_this_machine():
    assert [t.threads for t in TIERS] == [8, 64, 256]
    assert [t.nodes for t in TIERS] == [1, 2, 4]
    assert Tier(4, 2, 32).clients == 512
    assert Tier(4, 2, 32).processes == 8


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--rounds", "1"], "full run"),
        (["--configs", "3,6"], "full run"),
        (["--configs", "3,9", "--name", "x"], "--configs takes"),
        (["--seconds", "0", "--name", "x"], "--seconds"),
        (["--seconds", "61", "--name", "x"], "--seconds"),
        (["--name", "a/b"], "--name takes"),
    ],
    ids=["fewer-rounds", "fewer-configs", "unknown-config", "no-time", "long", "path"],
)
def test_the_plan_refuses(argv, error, capsys):
    with pytest.raises(SystemExit):
        fan_plan_parse(argv)
    assert error in capsys.readouterr().err


def test_the_plan_defaults_are_the_full_run():
    plan = fan_plan_parse([])
    assert (plan.rounds, plan.seconds, plan.name, plan.configs) == (
        3,
        10,
        "fanout",
        CONFIGS,
    )
    smoke = fan_plan_parse(["--rounds", "1", "--seconds", "3", "--name", "smoke"])
    assert (smoke.rounds, smoke.seconds, smoke.name) == (1, 3, "smoke")


LABELS = {
    "3": "3. gunicorn, direct, CONN_MAX_AGE=600",
    "4": "4. gunicorn, direct, native psycopg pool",
    "6": "6. ours: make run's defaults, PgBouncer",
    "6a": "6a. ours + reuse_port",
}


def run(key, threads, *, rnd=1, failed=0, backends=8, rps=100.0):
    return FanRun(
        config=LABELS[key],
        threads=threads,
        round=rnd,
        rps=rps,
        requests=int(rps * 10),
        failed=failed,
        p99_ms=50.0,
        peak_backends=backends,
        peak_pss_mib=backends * 2.0,
        peak_rss_mib=backends * 10.0,
    )


def test_cells_take_medians_and_the_worst_round():
    cells = cells_of(
        [
            run("6", 64, rnd=1, failed=0, backends=18, rps=100),
            run("6", 64, rnd=2, failed=4, backends=20, rps=300),
            run("6", 64, rnd=3, failed=0, backends=19, rps=200),
        ]
    )
    (cell,) = cells
    assert (cell.rounds, cell.rps_median, cell.failed_median, cell.failed_max) == (
        3,
        200,
        0,
        4,
    )
    assert (cell.backends_median, cell.backends_max) == (19, 20)
    assert "0 (max 4)" in fanout_table(cells)[2]


def ours_and_alternatives(*, ours_failed=0, ours_backends=20, direct_large=97):
    return cells_of(
        [
            run("6", 8, backends=8),
            run("6", 64, backends=ours_backends),
            run("6", 256, failed=ours_failed, backends=ours_backends),
            run("3", 8, backends=8),
            run("3", 256, backends=direct_large, failed=900),
            run("4", 8, backends=8),
            run("4", 256, backends=97),
            run("6a", 256, failed=2, backends=20),
        ]
    )


def line_of(lines, start):
    (line,) = [line for line in lines if line.split(" ", 1)[1].startswith(start)]
    return line


@pytest.mark.parametrize(
    ("cells", "start", "verdict"),
    [
        (ours_and_alternatives(), "ours (6)", "PASS"),
        (ours_and_alternatives(ours_failed=1), "ours (6)", "FAIL"),
        (ours_and_alternatives(ours_backends=21), "ours (6)", "FAIL"),
        (ours_and_alternatives(), LABELS["3"], "PASS"),
        (ours_and_alternatives(direct_large=20), LABELS["3"], "FAIL"),
        (ours_and_alternatives(direct_large=8), LABELS["3"], "FAIL"),
        (ours_and_alternatives(), LABELS["4"], "PASS"),
        (ours_and_alternatives(), LABELS["6a"], "INFO"),
        (cells_of([run("6", 8)]), "ours (6)", "SKIP"),
    ],
    ids=[
        "ours-clean",
        "ours-one-failed",
        "ours-above-the-pool",
        "direct-grows",
        "direct-at-the-pool-is-not-growth",
        "direct-flat",
        "native-grows",
        "variant-reported",
        "no-tier-past-the-pool",
    ],
)
def test_fanout_targets(cells, start, verdict):
    line = line_of(fan_targets_evaluate(cells, pool=20), start)
    assert line.split(" ", 1)[0] == verdict


def test_socket_errors_by_kind():
    out = "  Socket errors: connect 0, read 2, write 0, timeout 5\n"
    assert socket_errors_parse(out) == {
        "connect": 0,
        "read": 2,
        "write": 0,
        "timeout": 5,
    }
    assert sum(socket_errors_parse("no errors line").values()) == 0


def test_a_cell_says_what_its_worst_round_failed_with():
    worst = FanRun(
        **{
            **run("6", 256, rnd=2, failed=6).__dict__,
            "non_2xx": 1,
            "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 5},
        }
    )
    (cell,) = cells_of([run("6", 256, rnd=1, failed=0), worst])
    assert cell.failed_kinds == "non-2xx 1, timeout 5"
    assert "3 (max 6: non-2xx 1, timeout 5)" in fanout_table([cell])[2]


def test_unrecorded_failure_kinds_say_nothing():
    assert failed_kinds(run("6", 8, failed=2)) == ""


def test_the_plan_takes_some_tiers():
    plan = fan_plan_parse(["--tiers", "256", "--name", "diag", "--configs", "6"])
    assert [t.threads for t in plan.tiers] == [256]
    with pytest.raises(SystemExit):
        fan_plan_parse(["--tiers", "100", "--name", "diag"])
    with pytest.raises(SystemExit):
        fan_plan_parse(["--tiers", "8"])  # the full run's name for a part of it
