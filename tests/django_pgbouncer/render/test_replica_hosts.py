"""POSTGRES_REPLICA_HOSTS: a [databases] entry per streaming replica, the
upstream's database on the replica's server, under a name of its own."""

import pytest

from django_pgbouncer import ConfigError
from tests.django_pgbouncer.render.test_ini import UPSTREAM, ini_sections, render


def databases(env):
    return dict(ini_sections(render(env)[1])["databases"])


def test_no_replicas_no_entries():
    assert set(databases({"POSTGRES_DATABASE_URL": UPSTREAM})) == {"app", "*"}


@pytest.mark.parametrize(
    ("hosts", "entries"),
    [
        ("r1:5433", {"app_replica1": "host='r1' port=5433 dbname='app'"}),
        (
            " 127.0.0.1:55433 , [::1]:55434,",
            {
                "app_replica1": "host='127.0.0.1' port=55433 dbname='app'",
                "app_replica2": "host='::1' port=55434 dbname='app'",
            },
        ),
    ],
    ids=["one", "two-spaces-ipv6-trailing-comma"],
)
def test_each_replica_is_a_database(hosts, entries):
    found = databases(
        {"POSTGRES_DATABASE_URL": UPSTREAM, "POSTGRES_REPLICA_HOSTS": hosts}
    )
    assert {k: v for k, v in found.items() if "replica" in k} == entries
    assert found["app"] == "host='db' port=5432 dbname='app'"


@pytest.mark.parametrize(
    "hosts",
    ["r1", "r1:", "r1:70000", "u:p@r1:5432", "r1:5432/app", ":5432", "r 1:5432"],
)
def test_not_host_and_port_names_the_variable(hosts):
    with pytest.raises(ConfigError) as raised:
        render({"POSTGRES_DATABASE_URL": UPSTREAM, "POSTGRES_REPLICA_HOSTS": hosts})
    assert raised.value.variable == "POSTGRES_REPLICA_HOSTS"
    assert "u:p@" not in str(raised.value)  # it may hold a password: not quoted
