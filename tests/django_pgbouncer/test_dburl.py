import pytest

from django_pgbouncer import ConfigError, postgres_url_parse

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
