"""The Compose stack's roles, on real servers: deploy/initdb/10-roles.sql run by psql
as the postgres image runs it, in a fresh cluster of the local PostgreSQL; then the
pgbouncer-config job, the migrate job, PgBouncer's health check and the site, each
with the environment docker-compose.yaml gives its service (.env.example as .env),
the hosts `db` and `pgbouncer` pointed at the local servers.

What it shows: neither role the site or the migrations log in as is a superuser or
may create databases or roles; migrate works as the owner, the site's pages and
commands as the site's role through PgBouncer; what is not theirs to do fails."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors

from devstack.ephemeral import scratch_dir
from devstack.errors import ServersMissing
from devstack.pgbouncer import PgBouncer, PgBouncerSetup
from devstack.postgres import SUPERUSER, Postgres, PostgresConfig
from devstack.process import Account, port_pick
from django_pgbouncer import postgres_url_parse, redact
from tests.deploy.test_compose import (
    INIT_SCRIPT,
    OWNER_ROLE,
    ROOT,
    SITE_ROLE,
    env_example_documented,
    healthcheck_command,
    operator_env,
    secret_values,
    service_env,
)
from tests.fixtures.stack import missing_servers

pytestmark = pytest.mark.servers

TIMEOUT = 240


@dataclass
class Cluster:
    postgres: Postgres
    pgbouncer_port: int
    root: Path

    def superuser(self, dbname: str) -> psycopg.Connection[tuple[Any, ...]]:
        url = self.postgres.config.superuser_url(dbname).url()
        return psycopg.connect(url, autocommit=True)

    def local(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` with each URL's compose host (db, pgbouncer) made a local port."""
        ports = {"db": self.postgres.config.port, "pgbouncer": self.pgbouncer_port}
        out = dict(env)
        for name, value in env.items():
            if name.endswith("_URL"):
                url = postgres_url_parse(value, variable=name)
                out[name] = url.with_(host="127.0.0.1", port=ports[url.host]).url()
        return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A fresh cluster with POSTGRES_DB, as the postgres image has it before its
    init scripts run."""
    root = scratch_dir("test-compose-roles-")
    try:
        postgres = Postgres(
            PostgresConfig(
                datadir=root / "postgres" / "data",
                port=port_pick(),
                superuser_password=secrets.token_urlsafe(24),
                account=Account.for_servers(),
                durable=False,
            )
        )
    except ServersMissing as error:
        shutil.rmtree(root, ignore_errors=True)
        missing_servers(str(error))
    try:
        postgres.start()
        found = Cluster(postgres, port_pick(), root)
        assert service_env("db")["POSTGRES_USER"] == SUPERUSER
        with found.superuser("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{service_env("db")["POSTGRES_DB"]}"')
        yield found
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def init_run(cluster: Cluster, **changes: str) -> subprocess.CompletedProcess[str]:
    """psql on the init script, as docker-entrypoint.sh runs it: as POSTGRES_USER in
    POSTGRES_DB, the db service's environment (with `changes`) inherited."""
    env = service_env("db") | changes
    psql = cluster.postgres.bindir / "psql"
    return subprocess.run(
        [
            str(psql if psql.exists() else "psql"),
            "-v",
            "ON_ERROR_STOP=1",
            "--username",
            env["POSTGRES_USER"],
            "--no-password",
            "--no-psqlrc",
            "--dbname",
            env["POSTGRES_DB"],
            "-f",
            str(INIT_SCRIPT),
        ],
        env={
            "PATH": os.environ["PATH"],
            **env,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(cluster.postgres.config.port),
            "PGPASSWORD": cluster.postgres.config.superuser_password,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def roles(cluster: Cluster) -> list[str]:
    with cluster.superuser("postgres") as conn:
        rows = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1",
            [[OWNER_ROLE, SITE_ROLE]],
        ).fetchall()
    return [str(name) for (name,) in rows]


@pytest.mark.parametrize(
    ("changes", "blamed"),
    [
        ({"APP_PASSWORD": ""}, "APP_PASSWORD"),
        ({"APP_OWNER_PASSWORD": ""}, "APP_OWNER_PASSWORD"),
        (
            {"APP_PASSWORD": "same-for-both", "APP_OWNER_PASSWORD": "same-for-both"},
            "the same",
        ),
    ],
    ids=["site-password-empty", "owner-password-empty", "one-password-for-both"],
)
def test_the_init_script_refuses_a_missing_or_shared_password(cluster, changes, blamed):
    result = init_run(cluster, **changes)
    assert result.returncode != 0
    assert blamed in result.stderr
    assert "Fix:" in result.stderr
    assert roles(cluster) == []


def manage(
    args: list[str], env: Mapping[str, str], settings: str = "config.settings"
) -> subprocess.CompletedProcess[str]:
    """`python manage.py ARGS` with exactly a service's environment (and PATH)."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
            **env,
            "DJANGO_SETTINGS_MODULE": settings,
        },
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        redact(result.stdout, secret_values()),
        redact(result.stderr, secret_values()),
    )


@dataclass
class Site:
    cluster: Cluster
    pgbouncer: PgBouncer

    def web_env(self) -> dict[str, str]:
        return self.cluster.local(operator_env("web"))

    def connect(self, role: str, password: str) -> psycopg.Connection[Any]:
        url = postgres_url_parse(
            self.cluster.local(service_env("web"))["DIRECT_DATABASE_URL"], variable="x"
        ).with_(user=role, password=password)
        return psycopg.connect(url.url(), autocommit=True)


@pytest.fixture(scope="module")
def site(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The init script run, PgBouncer's files written by the job's command as the
    job runs it, PgBouncer started on them, and the migrations run as the job."""
    result = init_run(cluster)
    assert result.returncode == 0, result.stderr
    job_env = cluster.local(service_env("pgbouncer-config"))
    out = tmp_path_factory.mktemp("pgbouncer-config")
    # As the entry point runs it: the renderer's own settings, no secret key.
    render = manage(
        [
            "pgbouncer_config",
            "--output-dir",
            str(out),
            "--pgbouncer-version",
            job_env["PGBOUNCER_VERSION"],
        ],
        job_env,
        settings="deploy.render_settings",
    )
    assert render.returncode == 0, render.stderr
    bouncer = PgBouncer(
        PgBouncerSetup(
            workdir=cluster.root / "pgbouncer",
            port=cluster.pgbouncer_port,
            variables=job_env,
            account=cluster.postgres.config.account,
        )
    )
    bouncer.config.workdir.mkdir()
    # The job's verifier, so that the renderer keeps it (as a restart of the job does).
    shutil.copy(out / "userlist.txt", bouncer.config.workdir)
    cluster.postgres.config.account.own(
        bouncer.config.workdir, bouncer.config.workdir / "userlist.txt"
    )
    bouncer.start()
    try:
        migrate = manage(
            ["migrate", "--noinput"], cluster.local(operator_env("migrate"))
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        yield Site(cluster, bouncer)
    finally:
        bouncer.stop()


@pytest.mark.parametrize("role", [OWNER_ROLE, SITE_ROLE])
def test_no_role_the_site_uses_is_privileged(cluster, site, role):
    with cluster.superuser("postgres") as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
            "rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s",
            [role],
        ).fetchone()
    assert row == (False, False, False, False, False, True)


def test_the_migrations_belong_to_the_owner(cluster, site):
    database = service_env("db")["POSTGRES_DB"]
    with cluster.superuser(database) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        applied = conn.execute("SELECT count(*) FROM django_migrations").fetchone()
    assert owners == [(OWNER_ROLE,)]
    assert applied is not None
    assert applied[0] > 0


SITE_SCRIPT = """
from django.contrib.auth.models import User
from django.test import Client
from core.models import Post
client = Client(HTTP_HOST="localhost")
statuses = [client.get("/").status_code]
post = Post.objects.order_by("id").first()
statuses.append(client.get(f"/posts/{post.pk}/").status_code)
client.force_login(User.objects.get(username="admin"))
statuses += [client.get(p).status_code for p in ("/admin/", "/admin/core/post/")]
print(" ".join(map(str, statuses)))
"""


def test_the_site_works_as_its_role_through_pgbouncer(site):
    env = site.web_env()
    # collectstatic as the image's build runs it: the manifest storage of a site
    # without DJANGO_DEBUG needs its manifest to render the admin.
    for args in (
        ["collectstatic", "--noinput", "-v", "0"],
        ["seed_posts", "--count", "3"],
        ["admin_ensure"],
    ):
        result = manage(args, env)
        assert result.returncode == 0, result.stderr
    pages = manage(["shell", "-c", SITE_SCRIPT], env)
    assert pages.returncode == 0, pages.stderr
    assert pages.stdout.splitlines()[-1].split() == ["200"] * 4
    status = manage(["pgbouncer_status", "--timeout", "5"], env)
    assert status.returncode == 0, status.stdout + status.stderr


def test_the_pgbouncer_health_check_logs_in_without_a_command_line_password(site):
    env = service_env("pgbouncer") | {"PGPORT": str(site.cluster.pgbouncer_port)}
    command = healthcheck_command("pgbouncer")
    result = subprocess.run(
        ["/bin/sh", "-c", command.replace("$$", "$")],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The same check with a wrong password fails: it did log in.
    wrong = subprocess.run(
        ["/bin/sh", "-c", command.replace("$$", "$")],
        env={"PATH": os.environ["PATH"], **env, "PGPASSWORD": "wrong"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert wrong.returncode != 0


@pytest.mark.parametrize(
    ("role", "password", "statement"),
    [
        (SITE_ROLE, "APP_PASSWORD", "CREATE TABLE intruder (id int)"),
        (SITE_ROLE, "APP_PASSWORD", "DROP TABLE core_post"),
        (SITE_ROLE, "APP_PASSWORD", "ALTER TABLE core_post ADD COLUMN x int"),
        (SITE_ROLE, "APP_PASSWORD", "TRUNCATE core_post"),
        (SITE_ROLE, "APP_PASSWORD", "CREATE DATABASE intruder"),
        (SITE_ROLE, "APP_PASSWORD", "CREATE TEMP TABLE intruder (id int)"),
        (OWNER_ROLE, "APP_OWNER_PASSWORD", "CREATE DATABASE intruder"),
        (OWNER_ROLE, "APP_OWNER_PASSWORD", "CREATE ROLE intruder"),
        (OWNER_ROLE, "APP_OWNER_PASSWORD", "ALTER ROLE app SUPERUSER"),
        (OWNER_ROLE, "APP_OWNER_PASSWORD", "COPY (SELECT 1) TO PROGRAM 'true'"),
        (OWNER_ROLE, "APP_OWNER_PASSWORD", "ALTER SYSTEM SET work_mem = '1GB'"),
    ],
    ids=lambda value: value if " " not in value else value.split(" (")[0],
)
def test_what_is_not_the_role_s_to_do_fails(site, role, password, statement):
    with (
        site.connect(role, service_env("db")[password]) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_the_site_s_role_may_not_connect_elsewhere_or_be_the_owner(site):
    with site.connect(SITE_ROLE, service_env("db")["APP_PASSWORD"]) as conn:
        owns = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
            "WHERE r.rolname = current_user"
        ).fetchone()
    assert owns == (0,)


@pytest.mark.parametrize(
    ("variable", "command", "allowed"),
    [
        ("PGBOUNCER_ADMIN_URL", "SHOW POOLS", True),
        ("PGBOUNCER_ADMIN_URL", "PAUSE", False),
        ("PGBOUNCER_ADMIN_URL", "SHUTDOWN", False),
        ("PGBOUNCER_MAINTENANCE_URL", "SHOW POOLS", True),
    ],
)
def test_the_console_logins_are_split(site, variable, command, allowed):
    env = site.cluster.local(service_env("web") | service_env("maintenance"))
    with psycopg.connect(env[variable], autocommit=True) as console:
        if allowed:
            console.execute(command, prepare=False)
        else:
            with pytest.raises(psycopg.Error, match="admin"):
                console.execute(command, prepare=False)


def test_the_maintenance_login_may_pause(site):
    env = site.cluster.local(service_env("maintenance"))
    with psycopg.connect(env["PGBOUNCER_MAINTENANCE_URL"], autocommit=True) as console:
        console.execute("PAUSE", prepare=False)
        console.execute("RESUME", prepare=False)


def test_the_example_documents_the_init_script_s_variables():
    assert {"APP_OWNER_PASSWORD", "APP_PASSWORD"} <= set(env_example_documented())
