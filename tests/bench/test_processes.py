"""bench.processes's command line (the benchmark itself never runs in the tests)."""

import pytest

from bench.processes import Plan, plan_parse


@pytest.mark.parametrize(
    ("argv", "plan"),
    [
        ([], Plan()),
        (["--processes", "4", "--rounds", "1"], Plan(processes=4, rounds=1)),
        (
            ["--seconds", "5", "--clients", "16", "--name", "x"],
            Plan(seconds=5, clients=16, name="x"),
        ),
    ],
    ids=["defaults", "processes-and-rounds", "seconds-clients-name"],
)
def test_plan(argv, plan):
    assert plan_parse(argv) == plan


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "1"], "--processes: at least 2"),
        (["--rounds", "0"], "--rounds: at least 1"),
        (["--clients", "0"], "--clients: at least 1"),
    ],
    ids=["one-process", "no-round", "no-client"],
)
def test_a_bad_plan_says_which_option(argv, message, capsys):
    with pytest.raises(SystemExit):
        plan_parse(argv)
    assert message in capsys.readouterr().err
