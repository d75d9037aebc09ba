"""bench.plan: what a harness command line measures, and where it writes."""

import pytest

from bench.plan import plan_parse


@pytest.mark.parametrize(
    ("argv", "name", "rounds", "clients", "pages"),
    [
        ([], "latest", 3, (16, 256, 1000), ("list", "detail")),
        (["--quick"], "quick", 1, (16,), ("list",)),
        (["--quick", "--rounds", "3"], "quick", 3, (16,), ("list",)),
        (
            ["--configs", "3,6", "--name", "try"],
            "try",
            3,
            (16, 256, 1000),
            ("list", "detail"),
        ),
        (["--clients", "16", "--name", "few"], "few", 3, (16,), ("list", "detail")),
        (
            ["--render", "--name", "proposals"],
            "proposals",
            3,
            (16, 256, 1000),
            ("list", "detail"),
        ),
    ],
    ids=[
        "full",
        "quick",
        "quick-more-rounds",
        "named-subset",
        "named-clients",
        "render",
    ],
)
def test_plan_parse_names_the_results(argv, name, rounds, clients, pages):
    plan = plan_parse(argv)
    assert (plan.name, plan.rounds, plan.clients, plan.pages) == (
        name,
        rounds,
        clients,
        pages,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--quick", "--name", "latest"],
        ["--configs", "6"],
        ["--clients", "16"],
        ["--pages", "list"],
        ["--variant", "health checks:CONN_HEALTH_CHECKS=1"],
        ["--set", "GUNICORN_CMD_ARGS=--reuse-port"],
    ],
    ids=["quick", "configs", "clients", "pages", "variant", "set"],
)
def test_plan_parse_keeps_partial_runs_out_of_latest(argv, capsys):
    with pytest.raises(SystemExit):
        plan_parse(argv)
    assert "name this run with --name" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--set", "NOVALUE"],
        ["--clients", "0", "--name", "x"],
        ["--clients", "many", "--name", "x"],
        ["--pages", "home", "--name", "x"],
        ["--name", "../latest"],
        ["--variant", "no-colon", "--name", "x"],
        ["--rounds", "0"],
    ],
    ids=["set", "zero-clients", "clients-word", "page", "name", "variant", "rounds"],
)
def test_plan_parse_refuses_bad_values(argv):
    with pytest.raises(SystemExit):
        plan_parse(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--quick", "--name", "proposals"],
        ["--configs", "6", "--name", "explore-queries"],
        ["--quick", "--name", "full-default"],
    ],
    ids=["quick", "narrowed", "quick-full-default"],
)
def test_plan_parse_keeps_partial_runs_off_every_quoted_result(argv, capsys):
    with pytest.raises(SystemExit):
        plan_parse(argv)
    assert "give this quick or narrowed run a new --name" in capsys.readouterr().err
