"""The container deployment, checked without a Docker engine.

deploy/docker-compose.yaml, deploy/Dockerfile, deploy/entrypoint.sh and .env.example
are read as data and held against the code that runs in the containers: the
settings, gunicorn's config and PgBouncer's renderer. Each mismatch found here is a
stack that `docker compose up` would not start, or would start wrong.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import json
import os
import re
import runpy
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from django_pgbouncer import PostgresURL, postgres_url_parse
from django_pgbouncer.render import (
    SETTINGS,
    PgBouncerConfig,
    ini_render,
    pgbouncer_config_from_env,
    version_parse,
)
from django_pgbouncer.render.files import INI_NAME, USERLIST_NAME

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
ENV_EXAMPLE = ROOT / ".env.example"
ENV_MAINTENANCE = ROOT / ".env.maintenance"
# .env.example's section for .env.maintenance: its lines are commented out there.
MAINTENANCE_SECTION = "# --- Planned maintenance"
MAINTENANCE_VARIABLE = "PGBOUNCER_MAINTENANCE_URL"

SERVICES = ("db", "pgbouncer-config", "migrate", "pgbouncer", "web", "maintenance")
INIT_SCRIPT = ROOT / "deploy" / "initdb" / "10-roles.sql"
# The roles initdb/10-roles.sql makes: the owner of the tables, and the site's.
OWNER_ROLE, SITE_ROLE = "app_owner", "app"
CONFIG_VOLUME = "pgbouncer_config"
# Read by the postgres image, not by our code.
POSTGRES_IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
# libpq's own variables, which psql in the pgbouncer service's health check reads.
LIBPQ_VARIABLES = {
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGCONNECT_TIMEOUT",
}
# PostgreSQL's max_connections (100) less superuser_reserved_connections (3).
POSTGRES_CONNECTIONS = 97

# `NAME=value` sets a variable; `# NAME=value` documents one left unset.
VARIABLE_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
_NAME = r"""["']([A-Z][A-Z0-9_]*)["']"""
ENV_READS = (
    # env_int("NAME", ...) in config/, env_int(env, "NAME", ...) in the app
    re.compile(rf"\benv_(?:str|bool|int|list|port)\(\s*(?:\w+,\s*)?{_NAME}"),
    re.compile(rf"\b(?:os\.environ|env)\.get\(\s*{_NAME}"),
    re.compile(rf"\b(?:os\.environ|env)\[\s*{_NAME}\s*\]"),
    re.compile(rf"\bos\.getenv\(\s*{_NAME}"),
)


# --- Reading the files --------------------------------------------------------------


@functools.cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def env_example_lines() -> list[str]:
    return ENV_EXAMPLE.read_text().splitlines()


def env_example() -> dict[str, str]:
    """The variables .env.example sets, as the containers get them from ../.env."""
    matches = (VARIABLE_LINE.match(line) for line in env_example_lines())
    return {m[2]: m[3] for m in matches if m and not m[1]}


def env_example_documented() -> list[str]:
    """Every variable .env.example names, set or commented out, in file order."""
    matches = (VARIABLE_LINE.match(line) for line in env_example_lines())
    return [m[2] for m in matches if m]


def env_maintenance_example() -> dict[str, str]:
    """What .env.maintenance holds: the lines of .env.maintenance's section in
    .env.example, uncommented."""
    lines = env_example_lines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith(MAINTENANCE_SECTION)
    )
    matches = (VARIABLE_LINE.match(line) for line in lines[start + 1 :])
    return {m[2]: m[3] for m in matches if m}


def env_files(name: str) -> list[Path]:
    """The env files a service reads, resolved, in order."""
    entries = service(name).get("env_file", [])
    entries = [entries] if isinstance(entries, str | dict) else entries
    paths = [e["path"] if isinstance(e, dict) else e for e in entries]
    return [(COMPOSE_FILE.parent / path).resolve() for path in paths]


# Compose's interpolation: $$, ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?error}, ${NAME?error}.
_INTERPOLATION = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def interpolate(value: str, env: dict[str, str]) -> str:
    """`value` as compose fills it in from .env."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"] or "", match["arg"]
        got = env.get(name)
        missing = not got if op.startswith(":") else got is None
        if missing and op.endswith("-"):
            return str(arg)
        assert not (missing and op.endswith("?")), f"compose would stop: {arg}"
        return got or ""

    return _INTERPOLATION.sub(one, value)


def service_environment(name: str) -> dict[str, str | None]:
    """A service's `environment:` as written: None where only the name is given."""
    environment = service(name).get("environment") or {}
    if isinstance(environment, list):
        environment = dict(
            item.split("=", 1) if "=" in item else (item, None) for item in environment
        )
    return {k: None if v is None else str(v) for k, v in environment.items()}


def env_file_example(path: Path) -> dict[str, str]:
    examples = {ROOT / ".env": env_example, ENV_MAINTENANCE: env_maintenance_example}
    return examples[path]()


def service_declared(name: str) -> set[str]:
    """Every variable a service may receive: its env files' and its `environment:`."""
    names = set(service_environment(name))
    for path in env_files(name):
        names |= set(env_file_example(path))
    return names


def operator_env(name: str) -> dict[str, str]:
    """A service's environment once the operator has done what .env.example asks:
    the placeholder secret key (which the settings refuse) replaced by a real one."""
    env = service_env(name)
    if "DJANGO_SECRET_KEY" in env:
        env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def service_env(name: str) -> dict[str, str]:
    """A service's environment with .env.example as .env: its env files, then its
    `environment:` on top (a bare name takes .env's value, or stays unset)."""
    dotenv = env_example()
    env: dict[str, str] = {}
    for path in env_files(name):
        env |= env_file_example(path)
    for key, value in service_environment(name).items():
        if value is None:
            if key in dotenv:
                env[key] = dotenv[key]
        else:
            env[key] = interpolate(value, dotenv)
    return env


def compose_variables() -> set[str]:
    """The names the compose file takes from .env by interpolation."""
    return {m["name"] for m in _INTERPOLATION.finditer(COMPOSE_FILE.read_text())} - {
        None
    }


def init_variables() -> set[str]:
    """The names the init script reads from the db container's environment."""
    return set(re.findall(r"^\\getenv\s+\w+\s+(\w+)", INIT_SCRIPT.read_text(), re.M))


def mount_point(name: str, volume: str) -> str | None:
    for entry in service(name).get("volumes", []):
        if isinstance(entry, dict):
            source, target = entry.get("source"), entry.get("target")
        else:
            source, target = entry.split(":")[:2]
        if source == volume:
            return target
    return None


def image_name_and_tag(image: str) -> tuple[str, str]:
    head, _, last = image.split("@", 1)[0].rpartition("/")
    name, _, tag = last.partition(":")
    return (f"{head}/{name}" if head else name), tag


def healthcheck_command(name: str) -> str:
    test = service(name)["healthcheck"]["test"]
    if isinstance(test, str):
        return test
    kind, *args = test
    assert kind in ("CMD", "CMD-SHELL"), test
    return " ".join(args)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in text.splitlines())
    pairs = (line.partition(" ") for line in lines if line and line[0] != "#")
    return [(keyword.upper(), rest.strip()) for keyword, _, rest in pairs]


def entrypoint_default(pattern: str) -> str:
    match = re.search(pattern, ENTRYPOINT.read_text())
    assert match, f"{pattern!r} not found in {ENTRYPOINT.name}"
    return match[1]


def pgbouncer_release() -> tuple[int, int, int]:
    _, tag = image_name_and_tag(service("pgbouncer")["image"])
    match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(-p\d+)?", tag)
    assert match, f"edoburu/pgbouncer tag {tag!r} names no PgBouncer release"
    return int(match[1]), int(match[2]), int(match[3])


def output_dir() -> str:
    return entrypoint_default(r"--output-dir\s+(\S+)")


def rendered_config() -> PgBouncerConfig:
    """What the pgbouncer-config job would render from .env.example."""
    # The job's version comes from the entry point, parsed as the command parses it.
    version = version_parse(entrypoint_default(r"PGBOUNCER_VERSION:-([0-9.]+)"))
    return pgbouncer_config_from_env(
        service_env("pgbouncer-config"),
        version=version,
        auth_file=f"{output_dir()}/{USERLIST_NAME}",
    )


def variables_read(*places: str) -> set[str]:
    """Names of the environment variables the Python files in `places` read."""
    names: set[str] = set()
    for place in places:
        root = ROOT / place
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            text = path.read_text()
            for pattern in ENV_READS:
                names.update(pattern.findall(text))
    return names


CODE_VARIABLES = sorted(
    variables_read("config", "django_pgbouncer") | {s.variable for s in SETTINGS}
)


# --- docker-compose.yaml --------------------------------------------------------------


def test_compose_has_its_services_and_no_version_key():
    assert "version" not in compose()
    assert set(compose()["services"]) == set(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_no_service_reads_the_whole_env_file(name):
    # One .env for every container gave the database DJANGO_SECRET_KEY and the site
    # the superuser's password: compose reads it, each service names what it gets.
    assert ROOT / ".env" not in env_files(name)


@pytest.mark.parametrize("name", SERVICES)
def test_service_image_is_pinned(name):
    image = service(name).get("image")
    assert image, f"{name} names no image"
    _, tag = image_name_and_tag(image)
    assert tag, f"{image}: no tag means latest"
    assert tag != "latest"
    if "build" not in service(name):
        assert re.search(r"\d+\.\d+", tag), f"{image}: a moving major-version tag"


def test_web_and_config_job_build_the_same_image():
    web, job = service("web"), service("pgbouncer-config")
    assert web["image"] == job["image"]
    for build in (web["build"], job["build"]):
        context = COMPOSE_FILE.parent / build["context"]
        assert context.resolve() == ROOT
        # Compose reads `dockerfile` relative to the context.
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_pgbouncer_image_is_edoburu_with_the_cve_fixes():
    name, _ = image_name_and_tag(service("pgbouncer")["image"])
    assert name == "edoburu/pgbouncer"
    assert pgbouncer_release() >= (1, 25, 2)  # CVE-2026-6664..6667


def test_renderer_writes_for_the_pgbouncer_that_runs():
    release = ".".join(map(str, pgbouncer_release()))
    assert entrypoint_default(r"PGBOUNCER_VERSION:-([0-9.]+)") == release
    assert env_example().get("PGBOUNCER_VERSION", release) == release


def test_pgbouncer_healthcheck_queries_postgres_through_pgbouncer():
    command = healthcheck_command("pgbouncer")
    assert "pg_isready" not in command  # answers with the database down
    assert re.search(r"\bpsql\b.*select 1", command, re.IGNORECASE)
    # libpq's variables say where and as whom: PgBouncer itself, as the site.
    env = service_env("pgbouncer")
    config = rendered_config()
    assert (env["PGHOST"], env["PGPORT"]) == (
        "127.0.0.1",
        config.setting("listen_port"),
    )
    assert (env["PGUSER"], env["PGPASSWORD"], env["PGDATABASE"]) == (
        config.upstream.user,
        config.upstream.password,
        config.upstream.name,
    )
    assert float(env["PGCONNECT_TIMEOUT"]) > 0


def secret_values() -> set[str]:
    """Every password .env.example and .env.maintenance's section hold."""
    values = {
        value
        for name, value in (env_example() | env_maintenance_example()).items()
        if name.endswith("PASSWORD")
    }
    for name, value in (env_example() | env_maintenance_example()).items():
        if name.endswith("_URL"):
            values.add(postgres_url_parse(value, variable=name).password)
    return values - {""}


def command_lines(name: str) -> list[str]:
    """What a service runs: its command, entry point and health check, as text."""
    svc = service(name)
    lines = [
        " ".join(map(str, svc.get(key) or [])) for key in ("command", "entrypoint")
    ]
    if svc.get("healthcheck", {}).get("test"):
        lines.append(healthcheck_command(name))
    return [line for line in lines if line]


@pytest.mark.parametrize("name", SERVICES)
def test_no_password_on_a_command_line(name):
    # A process's argv is world-readable (/proc/PID/cmdline, ps); its environment
    # only to its own user. A URL or password expanded into argv is on show.
    env = service_env(name)
    holders = {
        key for key, value in env.items() if any(s in value for s in secret_values())
    }
    for line in command_lines(name):
        named = set(re.findall(r"\$\$\{?([A-Za-z_]\w*)", line))
        assert named.isdisjoint(holders), (name, line)
        assert "postgres://" not in line, line
        assert "postgresql://" not in line, line
        assert not any(secret in line for secret in secret_values()), name


@pytest.mark.parametrize("name", ["db", "pgbouncer"])
def test_healthcheck_leaves_variables_to_the_container(name):
    # A single $ is filled in by compose on the host, when the file is read.
    assert "$" not in healthcheck_command(name).replace("$$", "")


@pytest.mark.parametrize(
    ("name", "dependency", "condition"),
    [
        ("pgbouncer-config", "db", "service_healthy"),
        ("migrate", "db", "service_healthy"),
        ("web", "migrate", "service_completed_successfully"),
        ("pgbouncer", "db", "service_healthy"),
        ("pgbouncer", "pgbouncer-config", "service_completed_successfully"),
        ("web", "db", "service_healthy"),
        ("web", "pgbouncer", "service_healthy"),
    ],
    ids=[
        "config-job-after-db-healthy",
        "migrate-after-db-healthy",
        "web-after-migrations",
        "pgbouncer-after-db-healthy",
        "pgbouncer-after-config-job-done",
        "web-after-db-healthy",
        "web-after-pgbouncer-healthy",
    ],
)
def test_start_order(name, dependency, condition):
    depends_on = service(name).get("depends_on", {})
    assert isinstance(depends_on, dict), f"{name}: short depends_on waits for nothing"
    assert depends_on.get(dependency, {}).get("condition") == condition


def test_every_awaited_health_has_a_healthcheck():
    for name in SERVICES:
        for dependency, rule in (service(name).get("depends_on") or {}).items():
            if rule.get("condition") != "service_healthy":
                continue
            check = service(dependency).get("healthcheck", {})
            assert check.get("test"), f"{name} waits on {dependency}'s health"
            assert not check.get("disable"), f"{name} waits on {dependency}'s health"


def test_jobs_run_once_and_servers_come_back():
    for name in ("pgbouncer-config", "migrate"):
        assert service(name)["restart"] == "no", name  # quoted: YAML reads no
    for name in ("db", "pgbouncer", "web"):
        assert service(name)["restart"] in ("unless-stopped", "always"), name


def test_named_volumes_are_declared_and_mounted():
    declared = set(compose().get("volumes") or {})
    assert {"postgres_data", CONFIG_VOLUME} <= declared
    for name in SERVICES:
        for entry in service(name).get("volumes", []):
            source = entry["source"] if isinstance(entry, dict) else entry.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared {source}"
    assert mount_point("db", "postgres_data") == "/var/lib/postgresql/data"


def test_pgbouncer_reads_the_files_the_job_writes():
    directory = output_dir()
    assert mount_point("pgbouncer-config", CONFIG_VOLUME) == directory
    assert mount_point("pgbouncer", CONFIG_VOLUME) == directory
    # deploy/pgbouncer.sh, mounted, runs PgBouncer on the job's file.
    assert service("pgbouncer")["entrypoint"] == ["sh", "/pgbouncer.sh"]
    assert "./pgbouncer.sh:/pgbouncer.sh:ro" in service("pgbouncer")["volumes"]
    script = (COMPOSE_FILE.parent / "pgbouncer.sh").read_text()
    assert f'ini="${{PGBOUNCER_INI:-{directory}/{INI_NAME}}}"' in script


def test_the_web_service_reaches_each_pgbouncer_process_s_socket():
    run_dir = mount_point("pgbouncer", "pgbouncer_run")
    assert run_dir == mount_point("web", "pgbouncer_run")
    script = (COMPOSE_FILE.parent / "pgbouncer.sh").read_text()
    assert f'run_dir="${{PGBOUNCER_RUN_DIR:-{run_dir}}}"' in script


def test_pgbouncer_runs_as_the_owner_of_its_files():
    job_user, pgbouncer_user = (
        service(n).get("user") for n in ("pgbouncer-config", "pgbouncer")
    )
    assert job_user == pgbouncer_user
    assert job_user not in (None, "0", "0:0", "root")
    owners: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "RUN":
            for uid, gid, path in re.findall(
                r"install\s+-d\s+-o\s+(\d+)\s+-g\s+(\d+)\s+(?:-m\s+\d+\s+)?(\S+)", args
            ) + re.findall(r"chown\s+(\d+):(\d+)\s+(\S+)", args):
                owners[path] = f"{uid}:{gid}"
    # A fresh named volume takes the owner of the image's directory it is mounted on.
    assert owners.get(output_dir()) == job_user


@pytest.mark.parametrize("name", ["db", "pgbouncer", "pgbouncer-config", "migrate"])
def test_database_ports_stay_inside_the_compose_network(name):
    assert "ports" not in service(name)


def gunicorn_settings(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """config/gunicorn.py evaluated with the web service's environment."""
    env = service_env("web")
    for variable in variables_read("config/gunicorn.py"):
        if variable in env:
            monkeypatch.setenv(variable, env[variable])
        else:
            monkeypatch.delenv(variable, raising=False)
    # gunicorn.py exports its metrics folder into os.environ: keep it restorable.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp())
    return runpy.run_path(str(ROOT / "config" / "gunicorn.py"))


def test_web_listens_where_compose_publishes(monkeypatch):
    host, _, port = gunicorn_settings(monkeypatch)["bind"].rpartition(":")
    assert host == "0.0.0.0"  # noqa: S104 - inside the container, for the port map
    (published,) = service("web")["ports"]
    assert str(published).split(":")[-1].split("/")[0] == port
    exposed = [
        args for keyword, args in dockerfile_instructions() if keyword == "EXPOSE"
    ]
    assert port in " ".join(exposed).split()


# --- .env.example ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "variable", "host", "role", "password"),
    [
        ("web", "DATABASE_URL", "pgbouncer", SITE_ROLE, "APP_PASSWORD"),
        ("web", "DIRECT_DATABASE_URL", "db", SITE_ROLE, "APP_PASSWORD"),
        ("pgbouncer-config", "POSTGRES_DATABASE_URL", "db", SITE_ROLE, "APP_PASSWORD"),
        ("migrate", "DIRECT_DATABASE_URL", "db", OWNER_ROLE, "APP_OWNER_PASSWORD"),
    ],
    ids=["web-pooled", "web-direct", "pgbouncer-upstream", "migrate-direct"],
)
def test_url_reaches_its_server_as_its_role(name, variable, host, role, password):
    env, example = service_env(name), env_example()
    url = postgres_url_parse(env[variable], variable=variable)
    port = rendered_config().setting("listen_port") if host == "pgbouncer" else "5432"
    assert (url.host, str(url.port)) == (host, port)
    assert (url.user, url.password, url.name) == (
        role,
        example[password],
        example["POSTGRES_DB"],
    )


def test_roles_have_passwords_of_their_own():
    example = env_example()
    passwords = [
        example[name]
        for name in ("POSTGRES_PASSWORD", "APP_OWNER_PASSWORD", "APP_PASSWORD")
    ]
    assert len(set(passwords)) == len(passwords)
    assert example["POSTGRES_USER"] not in (OWNER_ROLE, SITE_ROLE)


def test_the_db_container_holds_none_of_the_site_s_secrets():
    declared = service_declared("db")
    assert "DJANGO_SECRET_KEY" not in declared
    assert not {name for name in declared if name.endswith("_URL")}


@pytest.mark.parametrize("name", ["web", "pgbouncer", "pgbouncer-config"])
def test_the_site_s_side_never_holds_a_password_above_its_role(name):
    example = env_example()
    above = {example["POSTGRES_PASSWORD"], example["APP_OWNER_PASSWORD"]}
    for variable, value in service_env(name).items():
        assert not any(password in value for password in above), (name, variable)
    assert {"POSTGRES_PASSWORD", "APP_OWNER_PASSWORD"}.isdisjoint(
        service_declared(name)
    )


SETTINGS_VARIABLES = variables_read("config/settings.py", "config/env.py")
RENDERER_VARIABLES = (
    variables_read("django_pgbouncer/render")
    | {s.variable for s in SETTINGS}
    | {"PGBOUNCER_VERSION"}
)
# What each service's code reads: it gets nothing else.
READERS = {
    "db": POSTGRES_IMAGE_VARIABLES | init_variables(),
    "pgbouncer-config": RENDERER_VARIABLES,
    "migrate": SETTINGS_VARIABLES,
    "pgbouncer": LIBPQ_VARIABLES | {"PGBOUNCER_PROCESSES"},  # deploy/pgbouncer.sh
    "web": variables_read("config"),
    "maintenance": SETTINGS_VARIABLES | {MAINTENANCE_VARIABLE},
}


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_gets_only_the_variables_it_reads(name):
    assert sorted(service_declared(name) - READERS[name]) == []


@pytest.mark.parametrize(
    ("name", "needed"),
    [
        ("web", variables_read("config")),
        (
            "migrate",
            SETTINGS_VARIABLES
            - {
                "DATABASE_URL",
                "PGBOUNCER_ADMIN_URL",
                "PGBOUNCER_ADMIN_URLS",
                "METRICS_TOKEN",
            },
        ),
        ("pgbouncer-config", RENDERER_VARIABLES - {"PROMETHEUS_MULTIPROC_DIR"}),
    ],
)
def test_each_service_gets_every_variable_it_reads(name, needed):
    # A name missing from a service's `environment:` is a setting in .env that
    # silently never reaches it.
    assert sorted(needed - service_declared(name)) == []


def console_users(key: str) -> list[str]:
    """admin_users or stats_users, as rendered from .env.example."""
    names = rendered_config().setting(key) or ""
    return [name.strip() for name in names.split(",") if name.strip()]


def console_url(name: str, variable: str) -> PostgresURL:
    return postgres_url_parse(service_env(name)[variable], variable=variable)


@pytest.mark.parametrize(
    ("name", "variable"),
    [("web", "PGBOUNCER_ADMIN_URL"), ("maintenance", MAINTENANCE_VARIABLE)],
)
def test_console_url_reaches_the_console_and_can_log_in(name, variable):
    config = rendered_config()
    url = console_url(name, variable)
    assert (url.host, str(url.port), url.name) == (
        "pgbouncer",
        config.setting("listen_port"),
        "pgbouncer",
    )
    assert dict(config.users).get(url.user) == url.password  # in userlist.txt


def test_the_sites_console_user_may_only_read():
    url = console_url("web", "PGBOUNCER_ADMIN_URL")
    assert url.user in console_users("stats_users")
    assert url.user not in console_users("admin_users")


def test_the_maintenance_user_may_pause_and_is_not_the_sites():
    url = console_url("maintenance", MAINTENANCE_VARIABLE)
    site = console_url("web", "PGBOUNCER_ADMIN_URL")
    assert url.user in console_users("admin_users")
    assert url.user != site.user
    assert url.password != site.password


def test_the_web_service_never_receives_the_maintenance_url():
    assert MAINTENANCE_VARIABLE in env_example_documented()
    assert MAINTENANCE_VARIABLE not in env_example()  # kept out of .env entirely
    assert ENV_MAINTENANCE not in env_files("web")
    assert MAINTENANCE_VARIABLE not in service_env("web")
    holders = {name for name in SERVICES if MAINTENANCE_VARIABLE in service_env(name)}
    assert holders == {"pgbouncer-config", "maintenance"}


def test_the_config_job_renders_without_the_maintenance_file():
    (entry,) = [
        e
        for e in service("pgbouncer-config")["env_file"]
        if isinstance(e, dict)
        and (COMPOSE_FILE.parent / e["path"]).resolve() == ENV_MAINTENANCE
    ]
    assert entry.get("required") is False
    # The maintenance service is useless without it: there it is required.
    assert "../.env.maintenance" in service("maintenance")["env_file"]


def test_the_maintenance_service_runs_only_when_asked(tmp_path):
    svc = service("maintenance")
    assert svc["image"] == service("web")["image"]
    assert svc.get("profiles"), "without a profile, `up` would start it"
    assert svc["restart"] == "no"
    assert "ports" not in svc
    # Its default command prints help: it never serves the site with the right to
    # PAUSE (the entry point's default, `web`, would).
    returncode, calls = entrypoint_run(tmp_path, *svc["command"])
    assert returncode == 0
    assert calls == [("python manage.py pgbouncer_maintenance --help", "exec")]


def test_dockerignore_keeps_the_maintenance_file_out():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert any(fnmatch.fnmatch(ENV_MAINTENANCE.name, line) for line in lines)


def test_scanner_sees_each_kind_of_read():
    assert {
        "DJANGO_SECRET_KEY",  # env_str("...") in settings
        "WEB_PORT",  # env_port("...") in gunicorn.py
        "PGBOUNCER_VERSION",  # os.environ.get("...") in the command
        "POSTGRES_DATABASE_URL",  # env.get("...") in the renderer
        "DB_HOST",  # env["..."] in the renderer
        "SCRAM_ITERATIONS",  # the SETTINGS table
    } <= set(CODE_VARIABLES)


@pytest.mark.parametrize("variable", CODE_VARIABLES)
def test_variable_is_documented(variable):
    assert variable in env_example_documented()


def test_every_variable_a_service_takes_from_env_is_documented():
    taken = compose_variables()
    for name in SERVICES:
        taken |= {k for k, v in service_environment(name).items() if v is None}
    assert sorted(taken - set(env_example_documented())) == []


def test_env_example_names_no_unknown_variable():
    known = (
        set(CODE_VARIABLES)
        | POSTGRES_IMAGE_VARIABLES
        | init_variables()
        | compose_variables()
    )
    assert sorted(set(env_example_documented()) - known) == []


def test_each_variable_is_documented_once_under_its_own_comment():
    names = env_example_documented()
    assert sorted({n for n in names if names.count(n) > 1}) == []
    bare = [
        line
        for previous, line in itertools.pairwise(["", *env_example_lines()])
        if VARIABLE_LINE.match(line)
        and (not previous.startswith("#") or VARIABLE_LINE.match(previous))
    ]
    assert bare == []


def test_env_example_values_read_the_same_in_compose_and_a_shell():
    for name, value in env_example().items():
        assert value == value.strip(), name
        assert value[:1] not in ("'", '"'), name
        assert "$" not in value, name
        assert " #" not in value, name


def test_rendered_pgbouncer_ini_passes_the_renderer():
    config = rendered_config()
    ini = ini_render(config)
    assert config.setting("listen_addr") == "0.0.0.0"  # noqa: S104 - in its container
    assert config.setting("pool_mode") == "transaction"
    assert config.setting("auth_type") == "scram-sha-256"
    auth_file = re.search(r"^auth_file = (.+)$", ini, re.MULTILINE)
    assert auth_file
    for name in ("pgbouncer-config", "pgbouncer"):
        mount = mount_point(name, CONFIG_VOLUME)
        assert mount
        assert Path(auth_file[1]).parent == Path(mount), name
    assert env_example()["POSTGRES_PASSWORD"] not in ini


def test_pool_sizes_fit_the_web_server_and_postgres(monkeypatch):
    gunicorn = gunicorn_settings(monkeypatch)
    config = rendered_config()
    max_client_conn = int(config.setting("max_client_conn") or 100)
    pool_size = int(config.setting("default_pool_size") or 20)
    max_db = int(config.setting("max_db_connections") or POSTGRES_CONNECTIONS)
    # Each gunicorn thread keeps one connection to PgBouncer (CONN_MAX_AGE).
    assert gunicorn["workers"] * gunicorn["threads"] <= max_client_conn
    assert pool_size <= max_db < POSTGRES_CONNECTIONS


def test_settings_load_from_the_env_example():
    documented = set(env_example_documented())
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in documented and not key.startswith("DJANGO_")
    }
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'debug': s.DEBUG, 'hosts': s.ALLOWED_HOSTS, "
        "'ssl_redirect': s.SECURE_SSL_REDIRECT, "
        "'servers': {a: d['HOST'] for a, d in s.DATABASES.items()}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={
            **base,
            **operator_env("web"),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["debug"] is False
    assert "localhost" in loaded["hosts"]
    assert loaded["ssl_redirect"] is False  # compose serves plain HTTP
    assert loaded["servers"] == {"default": "pgbouncer", "direct": "db"}


# --- entrypoint.sh --------------------------------------------------------------------

STUB = """#!/bin/sh
echo "$$ $(basename "$0") $*" >> "$STUB_LOG"
[ "$(basename "$0")" != "$STUB_FAIL" ]
"""


def entrypoint_run(
    tmp_path: Path, *args: str, fail: str = ""
) -> tuple[int, list[tuple[str, str]]]:
    """Run the entry point with python, gunicorn and tool stubbed; return what ran."""
    for stub in ("python", "gunicorn", "tool"):
        (tmp_path / stub).write_text(STUB)
        (tmp_path / stub).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "STUB_LOG": str(log), "STUB_FAIL": fail}
    proc = subprocess.Popen(["bash", str(ENTRYPOINT), *args], env=env)
    returncode = proc.wait(timeout=30)
    calls: list[tuple[str, str]] = []
    lines = log.read_text().splitlines() if log.exists() else []
    for pid, command in (line.split(" ", 1) for line in lines):
        # "exec": the command took over the entry point's process, so it is PID 1 in
        # the container and gets docker stop's SIGTERM itself.
        calls.append((command.strip(), "exec" if int(pid) == proc.pid else "child"))
    return returncode, calls


def test_entrypoint_is_strict_bash():
    lines = [line for line in ENTRYPOINT.read_text().splitlines() if line.strip()]
    assert lines[0] in ("#!/usr/bin/env bash", "#!/bin/bash")
    code = [line for line in lines if not line.lstrip().startswith("#")]
    assert code[0] == "set -euo pipefail"
    syntax = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True)
    assert syntax.returncode == 0, syntax.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["web"], [("gunicorn -c config/gunicorn.py", "exec")]),
        ([], [("gunicorn -c config/gunicorn.py", "exec")]),
        (["migrate"], [("python manage.py migrate --noinput", "exec")]),
        (
            ["pgbouncer-config"],
            [
                (
                    "python manage.py pgbouncer_config --output-dir /pgbouncer "
                    "--pgbouncer-version 1.25.2",
                    "exec",
                )
            ],
        ),
        (["tool", "--flag", "a value"], [("tool --flag a value", "exec")]),
    ],
    ids=["web", "default-is-web", "migrate", "pgbouncer-config", "anything-else"],
)
def test_entrypoint_runs(tmp_path, args, expected):
    returncode, calls = entrypoint_run(tmp_path, *args)
    assert returncode == 0
    assert calls == expected


def test_failed_migration_stops_the_web_server_from_starting(tmp_path):
    returncode, calls = entrypoint_run(
        tmp_path, *service("migrate")["command"], fail="python"
    )
    assert returncode != 0
    assert calls == [("python manage.py migrate --noinput", "exec")]
    # and the web service waits for the job to succeed (test_start_order).
    assert service("web")["command"] == ["web"]


# --- Dockerfile and .dockerignore ----------------------------------------------------


def test_base_image_is_pinned_python_311():
    (base,) = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    image = next(word for word in base.split() if not word.startswith("--"))
    name, tag = image_name_and_tag(image)
    assert name == "python"
    assert re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), tag


def test_image_runs_as_an_unprivileged_user():
    instructions = dockerfile_instructions()
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "without USER the container runs as root"
    name = users[-1].split(":")[0]
    assert name not in ("root", "0")
    if not name.isdigit():
        runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
        assert re.search(rf"\b(?:useradd|adduser)\b[^&;]*\s{name}\b", runs)


def test_image_installs_the_project_and_bakes_no_secret():
    instructions = dockerfile_instructions()
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert re.search(r"pip install (--no-deps )?\.(\s|$)", runs)
    assert "collectstatic" in runs
    baked = " ".join(
        args for keyword, args in instructions if keyword in ("ENV", "ARG")
    )
    assert "DJANGO_SECRET_KEY" not in baked
    (entrypoint,) = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint)[0].endswith("deploy/entrypoint.sh")


@pytest.mark.parametrize(
    "pattern", [".env", ".venv", ".git", ".devstack", "staticfiles"]
)
def test_dockerignore_keeps_out(pattern):
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert pattern in lines


def test_web_health_is_the_status_command():
    assert "manage.py pgbouncer_status" in healthcheck_command("web")
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert '"manage.py", "pgbouncer_status"' in dockerfile
