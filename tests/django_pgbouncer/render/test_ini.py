"""The renderer: environment in, pgbouncer.ini and userlist.txt text out."""

import configparser

import pytest

from bench.fanout_report import TIERS
from django_pgbouncer import ConfigError
from django_pgbouncer.checks import Capacity, capacity_problems
from django_pgbouncer.render import (
    SETTINGS,
    ini_render,
    pgbouncer_config_from_env,
    scram_verifier,
    scram_verifier_matches,
    userlist_parse,
    userlist_render,
    version_parse,
)

SECRET = "hunter2-s3cret"
UPSTREAM = f"postgres://app:{SECRET}@db:5432/app"
V118 = (1, 18)


def render(env, version=V118):
    config = pgbouncer_config_from_env(env, version=version, auth_file="/x/userlist")
    return config, ini_render(config)


def ini_sections(text):
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(text)
    return parser


def test_defaults_are_transaction_mode_scram_and_loopback():
    _, text = render({"POSTGRES_DATABASE_URL": UPSTREAM})
    bouncer = ini_sections(text)["pgbouncer"]
    assert bouncer["pool_mode"] == "transaction"
    assert bouncer["auth_type"] == "scram-sha-256"
    assert bouncer["listen_addr"] == "127.0.0.1"
    assert bouncer["auth_file"] == "/x/userlist"


def test_the_default_max_client_conn_holds_the_largest_benchmarked_tier():
    """E007's formula, on the renderer's default and bench/fanout.py's largest
    web tier (each thread holds one client connection to PgBouncer)."""
    bouncer = ini_sections(render({"POSTGRES_DATABASE_URL": UPSTREAM})[1])["pgbouncer"]
    largest = max(TIERS, key=lambda tier: tier.threads)
    budget = Capacity(
        processes=largest.processes,
        threads=largest.threads_per_process,
        pooled_aliases=1,
        direct_aliases=1,
        max_client_conn=int(bouncer["max_client_conn"]),
        default_pool_size=20,  # PgBouncer's default
        reserve_pool_size=0,
        pools=1,
        max_db_connections=0,
        max_connections=100,  # PostgreSQL's default, and make run's
        superuser_reserved_connections=3,
    )
    assert capacity_problems(budget) == []
    # Room for the tier twice over: a deploy's old and new tiers overlap.
    assert budget.max_client_conn >= 2 * budget.clients


def test_the_ini_holds_no_password():
    _, text = render({"POSTGRES_DATABASE_URL": UPSTREAM})
    assert SECRET not in text
    assert "password" not in text


def test_the_seed_variables_render_under_their_keys():
    env = {
        "POSTGRES_DATABASE_URL": UPSTREAM,
        "POOL_MODE": "session",
        "MAX_DB_CONNECTIONS": "100",
        "DEFAULT_POOL_SIZE": "40",
        "MAX_CLIENT_CONN": "1000",
        "LISTEN_PORT": "6432",
        "ADMIN_USERS": "ops, admin",
    }
    bouncer = ini_sections(render(env)[1])["pgbouncer"]
    assert bouncer["pool_mode"] == "session"
    assert bouncer["max_db_connections"] == "100"
    assert bouncer["default_pool_size"] == "40"
    assert bouncer["max_client_conn"] == "1000"
    assert bouncer["listen_port"] == "6432"
    assert bouncer["admin_users"] == "ops, admin"


def test_unset_variables_render_no_key():
    _, text = render({"POSTGRES_DATABASE_URL": UPSTREAM})
    assert "default_pool_size" not in text
    assert "max_prepared_statements" not in text
    assert "max_client_conn = 600" in text  # a default of ours


def test_databases_section_routes_the_name_and_every_other_name():
    _, text = render({"POSTGRES_DATABASE_URL": UPSTREAM})
    databases = ini_sections(text)["databases"]
    assert databases["app"] == "host='db' port=5432 dbname='app'"
    assert databases["*"] == "host='db' port=5432"


def test_connstr_values_with_quotes_are_doubled():
    _, text = render({"POSTGRES_DATABASE_URL": "postgres://app:pw@o%27neil/app"})
    assert "host='o''neil'" in text


def test_edoburu_db_variables_work_without_a_url():
    env = {"DB_HOST": "db", "DB_USER": "u", "DB_PASSWORD": "pw", "DB_NAME": "n"}
    config, text = render(env)
    assert (config.upstream.host, config.upstream.user, config.upstream.name) == (
        "db",
        "u",
        "n",
    )
    assert "n = host='db'" in text


def test_admin_console_user_joins_the_userlist():
    env = {
        "POSTGRES_DATABASE_URL": UPSTREAM,
        "PGBOUNCER_ADMIN_URL": "postgres://ops:opspw@127.0.0.1:6432/pgbouncer",
    }
    config, _ = render(env)
    assert dict(config.users) == {"app": SECRET, "ops": "opspw"}


STATS_URL = "postgres://stats:statspw@127.0.0.1:6432/pgbouncer"
MAINTENANCE_URL = "postgres://maint:maintpw@127.0.0.1:6432/pgbouncer"


def test_both_console_users_join_the_userlist():
    env = {
        "POSTGRES_DATABASE_URL": UPSTREAM,
        "PGBOUNCER_ADMIN_URL": STATS_URL,
        "PGBOUNCER_MAINTENANCE_URL": MAINTENANCE_URL,
        "STATS_USERS": "stats",
        "ADMIN_USERS": "maint",
    }
    config, text = render(env)
    assert dict(config.users) == {"app": SECRET, "stats": "statspw", "maint": "maintpw"}
    assert "maintpw" not in text


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"PGBOUNCER_MAINTENANCE_URL": MAINTENANCE_URL, "ADMIN_USERS": "ops"},
            "its user 'maint' is not in ADMIN_USERS",
        ),
        (
            {"PGBOUNCER_MAINTENANCE_URL": MAINTENANCE_URL},
            "its user 'maint' is not in ADMIN_USERS",
        ),
        (
            {
                "PGBOUNCER_ADMIN_URL": MAINTENANCE_URL.replace("maintpw", "other"),
                "PGBOUNCER_MAINTENANCE_URL": MAINTENANCE_URL,
                "ADMIN_USERS": "maint",
            },
            "is PGBOUNCER_ADMIN_URL's too",
        ),
        (
            {
                "PGBOUNCER_MAINTENANCE_URL": f"postgres://app:{SECRET}@h/pgbouncer",
                "ADMIN_USERS": "app",
            },
            "is POSTGRES_DATABASE_URL's too",
        ),
        (
            {
                "PGBOUNCER_MAINTENANCE_URL": "postgres://maint@h/pgbouncer",
                "ADMIN_USERS": "maint",
            },
            "has no password",
        ),
        (
            {"PGBOUNCER_MAINTENANCE_URL": "postgres://maint:maintpw@h:x/pgbouncer"},
            "the port",
        ),
    ],
    ids=[
        "not-an-admin",
        "no-admins",
        "the-sites-user",
        "the-upstream-role",
        "no-password",
        "malformed",
    ],
)
def test_a_wrong_maintenance_url_is_named_with_its_fix(env, problem):
    with pytest.raises(ConfigError) as caught:
        render({"POSTGRES_DATABASE_URL": UPSTREAM, **env})
    message = str(caught.value)
    assert message.startswith("PGBOUNCER_MAINTENANCE_URL: ")
    assert problem in message
    assert "Fix: " in message
    for secret in (SECRET, "maintpw", "other"):
        assert secret not in message


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("POOL_MODE", "txn", "is not a pool mode"),
        ("DEFAULT_POOL_SIZE", "forty", "is not a whole number"),
        ("DEFAULT_POOL_SIZE", "0", "is not a whole number from 1 to"),
        ("MAX_CLIENT_CONN", "4294967297", "is not a whole number from 1 to"),
        ("STATS_PERIOD", "\u0663\u0660", "in ASCII digits"),
        ("QUERY_TIMEOUT", "99999999999999999999", "is not a number of seconds"),
        ("LISTEN_PORT", "70000", "is not a port number"),
        ("LISTEN_PORT", "\u00b2", "is not a port number"),
        ("LISTEN_ADDR", "127.0.0.\x0b1", "(U+000B)"),
        ("SERVER_CHECK_QUERY", "select\x851", "(U+0085)"),
        ("POSTGRES_DATABASE_URL", f"postgres://app:{SECRET}@db%0Ax/app", "the host"),
        ("POSTGRES_DATABASE_URL", f"postgres://a%0Ab:{SECRET}@db/app", "the user"),
        ("POSTGRES_DATABASE_URL", f"postgres://app:{SECRET}@db/{'d' * 64}", "1 to 63"),
        ("POSTGRES_DATABASE_URL", f"postgres://{'u' * 128}:{SECRET}@db/a", "128 bytes"),
        ("PGBOUNCER_ADMIN_URL", f"postgres://st%0Ats:{SECRET}@h/pgbouncer", "the user"),
        ("MAX_CLIENT_CONN", "-5", "is not a whole number"),
        ("LISTEN_PORT", "5432x", "is not a port number"),
        ("QUERY_WAIT_TIMEOUT", "10s", "is not a number of seconds"),
        ("AUTH_TYPE", "md5", "is not one of scram-sha-256, hba"),
        ("AUTH_TYPE", "plain", "is not one of scram-sha-256, hba"),
        ("LOG_CONNECTIONS", "maybe", "is not a boolean"),
        ("ADMIN_USERS", "ops;drop", "is not a plain user"),
        ("SERVER_RESET_QUERY", "DISCARD ALL\n[pgbouncer]", "line break"),
        ("POSTGRES_DATABASE_URL", f"postgres://app:{SECRET}@db/", "no database name"),
        ("POSTGRES_DATABASE_URL", f"postgres://app:{SECRET}@db:x/app", "the port"),
        ("POSTGRES_DATABASE_URL", "postgres://app@db/app", "has no password"),
        ("POSTGRES_DATABASE_URL", f"postgres://app:{SECRET}@db/a%20b", "characters"),
    ],
    ids=lambda v: v if len(str(v)) < 20 else None,
)
def test_malformed_variable_is_named_with_its_fix(variable, value, problem):
    env = {"POSTGRES_DATABASE_URL": UPSTREAM, variable: value}
    with pytest.raises(ConfigError) as caught:
        render(env)
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert problem in message
    assert "Fix: " in message
    assert SECRET not in message


def test_missing_upstream_says_what_to_set():
    with pytest.raises(ConfigError, match=r"^POSTGRES_DATABASE_URL: is not set"):
        render({"POOL_MODE": "transaction"})


@pytest.mark.parametrize(
    ("variable", "value", "since"),
    [
        ("MAX_PREPARED_STATEMENTS", "100", "1.21"),
        ("TRACK_EXTRA_PARAMETERS", "search_path", "1.20"),
        ("TRANSACTION_TIMEOUT", "30", "1.25"),
        ("MAX_DB_CLIENT_CONNECTIONS", "100", "1.24"),
    ],
)
def test_keys_newer_than_the_target_version_are_refused(variable, value, since):
    env = {"POSTGRES_DATABASE_URL": UPSTREAM, variable: value}
    with pytest.raises(ConfigError, match=f"needs PgBouncer {since} or later"):
        render(env, version=V118)
    _, text = render(env, version=(1, 25))
    assert f"{variable.lower()} = {value}" in text


def test_every_setting_has_an_uppercase_variable():
    assert len({s.variable for s in SETTINGS}) == len(SETTINGS)
    assert all(s.variable == s.key.upper() for s in SETTINGS)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("1.18.0", (1, 18)),
        ("PgBouncer 1.18.0\nlibevent 2.1", (1, 18)),
        ("v1.25.2-p0", (1, 25)),
    ],
)
def test_version_parse(text, version):
    assert version_parse(text) == version


def test_version_parse_refuses_nonsense():
    with pytest.raises(ConfigError, match=r"^PGBOUNCER_VERSION: "):
        version_parse("latest")


def test_userlist_quotes_names_and_holds_verifiers_only():
    text = userlist_render({'we"ird': scram_verifier("pw")})
    assert text.startswith('"we""ird" "SCRAM-SHA-256$4096:')
    with pytest.raises(ValueError, match="SCRAM-SHA-256 verifiers only"):
        userlist_render({"app": "plaintext"})


def test_verifiers_are_salted_afresh():
    assert scram_verifier("pw") != scram_verifier("pw")


def test_userlist_round_trips():
    verifiers = {'we"ird': scram_verifier("a"), "app": scram_verifier("b")}
    assert userlist_parse(userlist_render(verifiers)) == verifiers


@pytest.mark.parametrize(
    ("password", "verifier_of", "matches"),
    [
        ("pw", "pw", True),
        ("pw", "pW", False),
        ("ünï", "ünï", True),
        ("pw", None, False),
    ],
    ids=["same", "other-password", "unicode", "not-a-verifier"],
)
def test_verifier_matches_its_password_whatever_the_salt(
    password, verifier_of, matches
):
    verifier = scram_verifier(verifier_of) if verifier_of else "md5abc"
    assert scram_verifier_matches(password, verifier) is matches


def test_upstream_sslmode_turns_on_tls_to_the_server():
    _, text = render({"POSTGRES_DATABASE_URL": UPSTREAM + "?sslmode=require"})
    assert ini_sections(text)["pgbouncer"]["server_tls_sslmode"] == "require"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DB_HOST": "db", "DB_PASSWORD": "pw", "DB_NAME": "a b"}, "DB_NAME"),
        ({"DB_HOST": "db", "DB_NAME": "app"}, "DB_PASSWORD"),
        ({"DB_HOST": "db", "DB_PASSWORD": "pw", "DB_PORT": "99999"}, "DB_PORT"),
        ({"DB_HOST": "db\x01", "DB_PASSWORD": "pw"}, "DB_HOST"),
        ({"DB_HOST": "db", "DB_PASSWORD": "pw", "DB_NAME": "app\n"}, "DB_NAME"),
        ({"DB_HOST": "db", "DB_PASSWORD": "pw", "DB_USER": "a\tb"}, "DB_USER"),
        ({"DB_HOST": "db", "DB_PASSWORD": "pw\udcff"}, "DB_PASSWORD"),
        ({"DB_HOST": "db", "DB_PASSWORD": "pw", "DB_PORT": "\u0665"}, "DB_PORT"),
    ],
    ids=[
        "bad-name",
        "no-password",
        "port-range",
        "control-in-host",
        "newline-after-name",
        "tab-in-user",
        "password-not-utf8",
        "port-arabic-indic",
    ],
)
def test_db_variables_are_blamed_by_name(env, variable):
    with pytest.raises(ConfigError, match=rf"^{variable}: "):
        render(env)
