import pytest

from django_pgbouncer import (
    ConfigError,
    database_config,
    direct_database_config,
    migration_alias,
)

URL = "postgres://app:pw@pgbouncer:6432/app"


@pytest.mark.parametrize(
    ("mode", "cursors_disabled", "prepare_off"),
    [("transaction", True, True), ("statement", True, True), ("session", False, False)],
)
def test_pooled_entry_follows_the_pool_mode(mode, cursors_disabled, prepare_off):
    entry = database_config(url=URL, pool_mode=mode)
    assert entry["DISABLE_SERVER_SIDE_CURSORS"] is cursors_disabled
    assert ("prepare_threshold" in entry["OPTIONS"]) is prepare_off
    assert entry["PGBOUNCER"] == {"pool_mode": mode, "guard": "raise"}
    assert (entry["HOST"], entry["PORT"], entry["NAME"]) == ("pgbouncer", 6432, "app")


def test_transaction_mode_drops_server_side_binding_from_the_url():
    entry = database_config(url=URL + "?server_side_binding=true")
    assert "server_side_binding" not in entry["OPTIONS"]
    assert entry["OPTIONS"]["prepare_threshold"] is None


def test_persistent_connections_without_a_health_check_round_trip_by_default():
    entry = database_config(url=URL)
    assert entry["CONN_MAX_AGE"] > 0
    assert entry["CONN_HEALTH_CHECKS"] is False


@pytest.mark.parametrize("mode", ["Transaction", "TRANSACTION "], ids=repr)
def test_pool_mode_is_case_insensitive(mode):
    assert database_config(url=URL, pool_mode=mode)["PGBOUNCER"]["pool_mode"] == (
        "transaction"
    )


def test_unknown_pool_mode_is_refused():
    with pytest.raises(ConfigError, match=r"^POOL_MODE: 'txn' is not a pool mode"):
        database_config(url=URL, pool_mode="txn")


def test_bad_url_names_its_variable():
    with pytest.raises(ConfigError, match=r"^DATABASE_URL: "):
        database_config(url="postgres://app:pw@h")


def test_direct_entry_keeps_a_session_and_mirrors_the_pooled_alias():
    entry = direct_database_config(url="postgres://app:pw@db:5432/app")
    assert entry["CONN_MAX_AGE"] == 0
    assert not entry["DISABLE_SERVER_SIDE_CURSORS"]
    assert entry["TEST"] == {"MIRROR": "default"}


@pytest.mark.parametrize(
    ("databases", "expected"),
    [
        ({"default": {}}, "default"),
        ({"default": {}, "direct": {"PGBOUNCER": {"direct_for": "default"}}}, "direct"),
        ({"default": {}, "other": {"PGBOUNCER": {"direct_for": "replica"}}}, "default"),
    ],
    ids=["no-direct-alias", "direct-alias", "direct-for-another-alias"],
)
def test_migration_alias(databases, expected):
    assert migration_alias(databases, "default") == expected


def test_guard_mode_and_version_are_recorded():
    entry = database_config(url=URL, guard="LOG", pgbouncer_version="1.21.0")
    assert entry["PGBOUNCER"] == {
        "pool_mode": "transaction",
        "guard": "log",
        "version": "1.21.0",
    }


def test_unknown_guard_mode_is_refused():
    with pytest.raises(ConfigError, match=r"^PGBOUNCER_GUARD: 'loud' is not a guard"):
        database_config(url=URL, guard="loud")
