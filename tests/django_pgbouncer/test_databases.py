import pytest

from django_pgbouncer import (
    ConfigError,
    database_config,
    direct_database_config,
    migration_alias,
    postgres_url_parse,
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


# URLs

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("url", "user", "password", "host", "port", "name"),
    [
        ("postgres://u:pw@h:5433/db", "u", "pw", "h", 5433, "db"),
        ("postgresql://u:pw@h/db", "u", "pw", "h", 5432, "db"),
        ("postgres://u:p%40ss@h/db", "u", "p@ss", "h", 5432, "db"),
        ("postgres://u:p@ss@h/db", "u", "p@ss", "h", 5432, "db"),
        (
            "postgres://u:a%3Ab%2Fc%2Ad%25e%23f@h/db",
            "u",
            "a:b/c*d%e#f",
            "h",
            5432,
            "db",
        ),
        ("postgres://u:*star*@h/db", "u", "*star*", "h", 5432, "db"),
        ("postgres://us%20er:pw@h/my%2Ddb", "us er", "pw", "h", 5432, "my-db"),
        ("postgres://u@h/db", "u", "", "h", 5432, "db"),
        ("postgres://u:pw@[::1]:6432/db", "u", "pw", "::1", 6432, "db"),
        ("postgres://u:pw@h/db?sslmode=require", "u", "pw", "h", 5432, "db"),
    ],
    ids=[
        "plain",
        "default-port",
        "encoded-at",
        "raw-at",
        "every-reserved",
        "stars",
        "encoded-user-and-name",
        "no-password",
        "ipv6",
        "query-not-in-name",
    ],
)
def test_parse(url, user, password, host, port, name):
    parsed = postgres_url_parse(url, variable="X")
    assert (parsed.user, parsed.password, parsed.host, parsed.port, parsed.name) == (
        user,
        password,
        host,
        port,
        name,
    )


def test_query_parameters_are_kept_apart_from_the_name():
    parsed = postgres_url_parse("postgres://u:pw@h/db?sslmode=require", variable="X")
    assert parsed.params == (("sslmode", "require"),)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "is empty"),
        ("mysql://u:s3cr3t-pw@h/db", "scheme 'mysql'"),
        ("s3cr3t-pw", "scheme"),
        ("postgres://u:s3cr3t-pw@h:port/db", "port is not a number"),
        ("postgres://u:s3cr3t-pw@h:99999/db", "port is not a number"),
        ("postgres://u:s3cr3t-pw#x@h/db", "port is not a number"),
        ("postgres://u:s3cr3t-pw@/db", "no host"),
        ("postgres://:s3cr3t-pw@h/db", "no user name"),
        ("postgres://u:s3cr3t-pw@h", "no database name"),
        ("postgres://u:s3cr3t-pw@h/", "no database name"),
        ("postgres://u:s3cr3t-pw@h/db\n", "line break"),
        ("postgres://u:s3cr3t-pw@db%0A.internal/db", "the host contains a line"),
        ("postgres://u:s3cr3t-pw@h%0D%0A%5Bpgbouncer%5D/db", "the host contains"),
        ("postgres://u:s3cr3t-pw@h%00/db", "(U+0000)"),
        ("postgres://u%0Aroot:s3cr3t-pw@h/db", "the user contains"),
        ("postgres://u%09:s3cr3t-pw@h/db", "the user contains"),
        ("postgres://u:s3cr3t-pw@h/db%0Ax", "the database name contains"),
        ("postgres://u:s3cr3t-pw@h/d%E2%80%A8b", "(U+2028)"),
        ("postgres://u%FF:s3cr3t-pw@h/db", "user holds percent-encoded bytes"),
        ("postgres://u:s3cr3t-pw%FF@h/db", "password holds percent-encoded bytes"),
        ("postgres://u:s3cr3t-pw@h/db\udcff", "not UTF-8"),
        ("postgres://u:s3cr3t-pw@h:0/db", "port is not a number"),
        ("postgres://u:s3cr3t-pw@h:%C2%B2/db", "port is not a number"),
        ("postgres://u:s3cr3t-pw@h:\u0665\u0664\u0663\u0662/db", "port is not"),
    ],
    ids=[
        "empty",
        "wrong-scheme",
        "no-scheme",
        "port-word",
        "port-range",
        "raw-hash-in-password",
        "no-host",
        "no-user",
        "no-name",
        "empty-name",
        "newline",
        "encoded-newline-in-host",
        "encoded-section-in-host",
        "encoded-nul-in-host",
        "encoded-newline-in-user",
        "encoded-tab-in-user",
        "encoded-newline-in-name",
        "line-separator-in-name",
        "user-not-utf8",
        "password-not-utf8",
        "bytes-not-utf8",
        "port-zero",
        "port-superscript",
        "port-arabic-indic",
    ],
)
def test_malformed_url_names_the_variable_and_hides_the_password(url, problem):
    with pytest.raises(ConfigError) as caught:
        postgres_url_parse(url, variable="DATABASE_URL")
    message = str(caught.value)
    assert message.startswith("DATABASE_URL: ")
    assert problem in message
    assert "Fix:" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "password", ["p@:/*%#;'\" \\x", "ünïcødé", "", "a" * 100], ids=repr
)
def test_url_round_trips(password):
    parsed = postgres_url_parse("postgres://u@h:1/db", variable="X").with_(
        password=password
    )
    assert postgres_url_parse(parsed.url(), variable="X") == parsed


def test_redacted_masks_the_password():
    parsed = postgres_url_parse(f"postgres://u:{SECRET}@h/db", variable="X")
    assert parsed.redacted() == "postgres://u:***@h:5432/db"
    assert SECRET not in repr(parsed)


def test_a_version_in_other_digits_is_refused_with_its_variable():
    with pytest.raises(ConfigError, match="PGBOUNCER_VERSION: "):
        database_config(
            url="postgres://u:pw@h/db", pgbouncer_version="\u0661.\u0662\u0661"
        )
