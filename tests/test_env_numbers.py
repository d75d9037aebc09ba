"""Every number read from the environment, by every reader (the site's settings,
gunicorn's, devstack's, the renderer's): a value in other digits, out of range or
malformed is the ConfigError naming its variable, never a traceback or a value
written on."""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from devstack.replicas import replica_ports_from_env
from devstack.stack import StackSettings
from django_pgbouncer import ConfigError, database_config
from django_pgbouncer.render import SETTINGS, pgbouncer_config_from_env

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = "postgres://app:pw@db:5432/app"

Reader = Callable[[pytest.MonkeyPatch, Mapping[str, str]], object]


def site_settings(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> object:
    """A fresh run of config/settings.py (the loaded one stays as it is)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = ROOT / "config" / "settings.py"
    spec = importlib.util.spec_from_file_location("config.settings_again", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gunicorn_settings(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]
) -> object:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        return runpy.run_path(str(ROOT / "config" / "gunicorn.py"))
    except SystemExit as stop:  # the ConfigError's message, as gunicorn shows it
        error, message = stop.__context__, str(stop.code)
    assert message == f"gunicorn: {error}"
    assert isinstance(error, ConfigError)
    raise error


def devstack_settings(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]
) -> object:
    return StackSettings.from_env(env)


def site_settings_with_replicas(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]
) -> object:
    """The site's settings where they read the replicas' numbers: with a replica."""
    replica = "postgres://app:pw@127.0.0.1:6432/app_replica1"
    return site_settings(monkeypatch, {"REPLICA_DATABASE_URLS": replica, **env})


def devstack_replicas(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]
) -> object:
    return replica_ports_from_env(env)


def renderer(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> object:
    return pgbouncer_config_from_env(
        {"POSTGRES_DATABASE_URL": UPSTREAM, **env}, version=(1, 25), auth_file="/x"
    )


def renderer_db_port(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> object:
    return pgbouncer_config_from_env(
        {"DB_HOST": "db", "DB_PASSWORD": "pw", **env}, version=(1, 25), auth_file="/x"
    )


def _kind(parse: Callable[[str, str], str]) -> str | None:
    """A renderer setting's kind of number, found by what its parser takes."""

    def takes(value: str) -> bool:
        try:
            parse("X", value)
        except ConfigError:
            return False
        return True

    if takes("abc") or not takes("5"):
        return None
    return "seconds" if takes("0.5") else "count"


RENDERED = {s.variable: kind for s in SETTINGS if (kind := _kind(s.parse))}
RENDERED["LISTEN_PORT"] = "port"

# variable -> (kind, its readers)
NUMBERS: dict[str, tuple[str, tuple[Reader, ...]]] = {
    "WEB_PORT": ("port", (gunicorn_settings, devstack_settings)),
    "WEB_CONCURRENCY": ("count", (gunicorn_settings, site_settings)),
    "GUNICORN_THREADS": ("count", (gunicorn_settings, site_settings)),
    "GUNICORN_TIMEOUT": ("count", (gunicorn_settings,)),
    "CONN_MAX_AGE": ("count", (site_settings,)),
    "DJANGO_HSTS_SECONDS": ("count", (site_settings,)),
    "DEVSTACK_POSTGRES_PORT": ("port", (devstack_settings,)),
    "DEVSTACK_PGBOUNCER_PORT": ("port", (devstack_settings,)),
    "DEVSTACK_SEED_POSTS": ("count", (devstack_settings,)),
    "DEVSTACK_REPLICAS": ("count", (devstack_replicas,)),
    "DEVSTACK_REPLICA_PORT": ("port", (devstack_replicas,)),
    "REPLICA_MAX_LAG_SECONDS": ("count", (site_settings_with_replicas,)),
    "REPLICA_WAIT_MS": ("count", (site_settings_with_replicas,)),
    "DB_PORT": ("port", (renderer_db_port,)),
    **{name: (kind, (renderer,)) for name, kind in RENDERED.items()},
}

BAD = {
    "port": ["\u00b2", "\u0668\u0660\u0668\u0660", "70000", "65536", "0", "-1"],
    "count": ["\u00b2", "\u0663", "\uff13", "2147483648", "4294967297", "1e3", "-1"],
    "seconds": ["\u00b2", "\u0663", "2147483648", "1e3", "0.0000001", "-1"],
}

CASES = [
    pytest.param(variable, reader, value, id=f"{variable}-{reader.__name__}-{value!a}")
    for variable, (kind, readers) in NUMBERS.items()
    for reader in readers
    for value in BAD[kind]
]


@pytest.fixture(autouse=True)
def _metrics_dir(monkeypatch, tmp_path):
    """gunicorn's settings make a metrics folder unless one is named."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))


@pytest.mark.parametrize(("variable", "reader", "value"), CASES)
def test_a_bad_number_is_the_config_error_naming_its_variable(
    monkeypatch, variable, reader, value
):
    with pytest.raises(ConfigError) as caught:
        reader(monkeypatch, {variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert "Fix: " in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:pw@h:%C2%B2/db",
        "postgres://u:pw@h:\u0665\u0664\u0663\u0662/db",
        "postgres://u:pw@h:70000/db",
        "postgres://u:pw@h:0/db",
    ],
    ids=["superscript", "arabic-indic", "out-of-range", "zero"],
)
@pytest.mark.parametrize("variable", ["DATABASE_URL", "POSTGRES_DATABASE_URL"])
def test_a_bad_port_in_a_url_is_the_config_error_naming_its_variable(variable, url):
    def read() -> object:
        if variable == "DATABASE_URL":
            return database_config(url=url)
        return renderer(pytest.MonkeyPatch(), {variable: url})

    with pytest.raises(ConfigError, match=rf"^{variable}: .*port"):
        read()


def test_gunicorn_says_a_bad_variable_in_one_line():
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = subprocess.run(
        [gunicorn, "--check-config", "-c", "config/gunicorn.py"],
        cwd=ROOT,
        env={**os.environ, "WEB_PORT": "\u00b2"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "gunicorn: WEB_PORT: '\u00b2' is not a port number. Fix: set WEB_PORT to a "
        "number from 1 to 65535, or unset it"
    ]


@pytest.mark.parametrize("value", ["\u0661.\u0662\u0661", "\u00b9.21"])
def test_a_version_in_other_digits_stops_the_settings(monkeypatch, value):
    with pytest.raises(ConfigError, match=r"^PGBOUNCER_VERSION: "):
        site_settings(monkeypatch, {"PGBOUNCER_VERSION": value})


# env_int("NAME" ...), env_port(env, "NAME" ...) and friends, wherever they are.
_READ = re.compile(r"\benv_(?:int|port)\(\s*(?:env,\s*)?\"([A-Z0-9_]+)\"")


def test_every_number_read_from_the_environment_is_in_the_table():
    read = {
        name
        for folder in ("config", "devstack", "django_pgbouncer", "deploy")
        for path in (ROOT / folder).rglob("*.py")
        for name in _READ.findall(path.read_text())
    }
    assert read, "the pattern finds the readers"
    assert read - NUMBERS.keys() == set()
