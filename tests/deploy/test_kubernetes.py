"""The Kubernetes deployment, checked without a cluster.

deploy/kubernetes/*.yaml are read as data and held against the code that runs in
the pods (the settings, gunicorn's config, PgBouncer's renderer), against Compose's
roles (deploy/initdb/10-roles.sql) and against what CloudNativePG accepts. Each
mismatch found here is a deployment that `kubectl apply -k` would refuse, or would
start wrong.
"""

from __future__ import annotations

import functools
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from django.conf import settings
from django.urls import resolve
from psycopg import errors, sql

from devstack.ephemeral import scratch_dir
from devstack.errors import ServersMissing
from devstack.postgres import SUPERUSER, Postgres, PostgresConfig
from devstack.process import Account, port_pick
from django_pgbouncer import postgres_url_parse
from django_pgbouncer.render import PgBouncerConfig, pgbouncer_config_from_env
from django_pgbouncer.render import version_parse as pgbouncer_version_parse
from tests.deploy.test_compose import (
    DOCKERFILE,
    INIT_SCRIPT,
    OWNER_ROLE,
    SETTINGS_VARIABLES,
    SITE_ROLE,
    entrypoint_run,
    image_name_and_tag,
    service,
    variables_read,
)
from tests.deploy.test_roles import manage
from tests.fixtures.stack import missing_servers

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUSTOMIZATION = KUBERNETES / "kustomization.yaml"
KINDS = {
    "Cluster": "postgresql.cnpg.io/v1",
    "Pooler": "postgresql.cnpg.io/v1",
    "ConfigMap": "v1",
    "Job": "batch/v1",
    "Deployment": "apps/v1",
    "Service": "v1",
}
# CloudNativePG: each Pooler's Service has the Pooler's name, PgBouncer listens on
# 5432 (pkg/management/pgbouncer/config: PgBouncerPort), and a Cluster's Services
# are <cluster>-rw (the primary), -ro (the replicas) and -r, on 5432.
POSTGRES_PORT = 5432
# The keys a Pooler may set (CloudNativePG's pooler webhook,
# AllowedPgbouncerGenericConfigurationParameters): any other is refused at
# admission as "Invalid or reserved parameter".
POOLER_PARAMETERS = frozenset(
    """
    application_name_add_host auth_type autodb_idle_timeout cancel_wait_timeout
    client_idle_timeout client_login_timeout client_tls_sslmode
    default_pool_size disable_pqexec dns_max_ttl dns_nxdomain_ttl
    idle_transaction_timeout ignore_startup_parameters listen_backlog
    log_connections log_disconnections log_pooler_errors log_stats
    max_client_conn max_db_connections max_packet_size max_prepared_statements
    max_user_connections min_pool_size pkt_buf query_timeout query_wait_timeout
    reserve_pool_size reserve_pool_timeout sbuf_loopcnt server_check_delay
    server_check_query server_connect_timeout server_fast_close
    server_idle_timeout server_lifetime server_login_retry server_reset_query
    server_reset_query_always server_round_robin server_tls_ciphers
    server_tls_protocols server_tls_sslmode stats_period suspend_timeout
    tcp_defer_accept tcp_socket_buffer tcp_keepalive tcp_keepcnt tcp_keepidle
    tcp_keepintvl tcp_user_timeout track_extra_parameters verbose
    """.split()  # noqa: SIM905 - the webhook's list, kept as it reads
)
# What the renderer writes by default that the operator writes itself instead:
# a Pooler leaves these alone.
OPERATOR_WRITES = {
    "listen_addr": "the operator listens on every address, in the pod",
    "listen_port": "the operator's 5432, the Pooler Service's port",
    "unix_socket_dir": "the operator's, where its own console user logs in",
    # auth_query against the cluster, and an hba file whose first line lets the
    # operator's own user into the console (its PAUSE, its exporter): a Pooler may
    # set auth_type, and scram-sha-256 would lock that user out.
    "auth_type": "hba, the operator's",
}
# What config/ reads that the web pods leave at its default, and why.
LEFT_AT_DEFAULT = {
    "CONN_MAX_AGE": "600 s: each thread keeps its connection to PgBouncer",
    "CONN_HEALTH_CHECKS": "off: the app checks the socket without a round trip",
    "DJANGO_HSTS_SECONDS": "a year, with DJANGO_HTTPS=1",
    "DJANGO_LOG_LEVEL": "INFO",
    "PGBOUNCER_GUARD": "log, with DJANGO_DEBUG=0",
    "GUNICORN_TIMEOUT": "30 s, above query_wait_timeout's 10 s",
    # A Pooler's console admits only the operator's user over the pod's local
    # socket, and stats_users is not a key a Pooler may set: no URL could log in.
    # The pools are seen through each Pooler pod's exporter (port 9127).
    "PGBOUNCER_ADMIN_URL": "no console a site can log in to",
    "PGBOUNCER_ADMIN_URLS": "no console a site can log in to, in any Pooler pod",
    # The router needs one alias per replica, to ask each what it has replayed and
    # read from that one. A Pooler fronts every replica behind one Service
    # (<cluster>-ro): the answer and the read could come from two replicas. So
    # reads stay on the primary; pgbouncer-ro serves work that may read stale rows.
    "REPLICA_DATABASE_URLS": "no alias that is one replica",
    "REPLICA_MAX_LAG_SECONDS": "no replicas routed to",
    "REPLICA_WAIT_MS": "no replicas routed to",
}
# Superuser connections PostgreSQL keeps back (superuser_reserved_connections).
RESERVED_CONNECTIONS = 3
# The pods' writable folder, an emptyDir: the root filesystem is read-only.
TMP = Path("/tmp")  # noqa: S108 - a path inside the pod


# --- Reading the files ---------------------------------------------------------------


@functools.cache
def documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every manifest, with its file's name."""
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path != KUSTOMIZATION:
            found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text())]
    return tuple(found)


def resources(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def resource(kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in resources(kind) if doc["metadata"]["name"] == name]
    return found


def cluster() -> dict[str, Any]:
    (found,) = resources("Cluster")
    return found


def pooler(kind: str) -> dict[str, Any]:
    (found,) = [p for p in resources("Pooler") if p["spec"]["type"] == kind]
    return found


def pod_spec(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = resource(kind, name)["spec"]["template"]["spec"]
    return spec


def containers(kind: str, name: str) -> dict[str, dict[str, Any]]:
    spec = pod_spec(kind, name)
    every = spec.get("initContainers", []) + spec["containers"]
    return {c["name"]: c for c in every}


CONTAINERS = [
    ("Deployment", "web", "wait-for-migrations"),
    ("Deployment", "web", "web"),
    ("Job", "migrate", "migrate"),
]


def container_env(kind: str, name: str, container: str) -> dict[str, str]:
    """A container's environment as the kubelet makes it: its ConfigMaps, then its
    `env` in order, $(NAME) filled in from what comes before. A Secret's value
    stands as `secret-<name>-<key>`."""
    spec = containers(kind, name)[container]
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env |= resource("ConfigMap", source["configMapRef"]["name"])["data"]
    for entry in spec.get("env", []):
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = f"secret-{ref['name']}-{ref['key']}"
        else:
            env[entry["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), str(entry["value"])
            )
    return env


def url_parts(kind: str, name: str, container: str) -> set[str]:
    """The variables that are there only to build a URL: named in a $(NAME)."""
    spec = containers(kind, name)[container]
    values = [str(e.get("value", "")) for e in spec.get("env", [])]
    return {m for value in values for m in re.findall(r"\$\((\w+)\)", value)}


def scalars(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from scalars(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from scalars(value, f"{path}[{i}]")
    else:
        yield path, node


def image_version(image: str) -> tuple[int, ...]:
    _, tag = image_name_and_tag(image)
    match = re.match(r"(\d+(?:\.\d+)+)", tag)
    assert match, f"{image}: a tag that names no release"
    return tuple(int(part) for part in match[1].split("."))


def site_settings() -> dict[str, str]:
    data: dict[str, str] = resource("ConfigMap", "site-settings")["data"]
    return data


# --- The files -----------------------------------------------------------------------


def test_manifests_parse_into_known_kinds_with_unique_names():
    seen = [(doc["kind"], doc["metadata"]["name"]) for _, doc in documents()]
    assert sorted(kind for kind, _ in seen) == sorted(
        ["Cluster", "Pooler", "Pooler", "ConfigMap", "Job", "Deployment", "Service"]
    )
    assert len(set(seen)) == len(seen)
    for _, doc in documents():
        assert doc["apiVersion"] == KINDS[doc["kind"]], doc["kind"]


def test_kustomization_applies_every_manifest():
    listed = yaml.safe_load(KUSTOMIZATION.read_text())["resources"]
    assert sorted(listed) == sorted({name for name, _ in documents()})


def test_configmap_values_are_strings():
    # kubectl refuses a ConfigMap whose value YAML reads as a number or a bool.
    for key, value in site_settings().items():
        assert isinstance(value, str), key


def test_no_password_in_any_manifest():
    assert not resources("Secret")  # made by kubectl from generated values
    for file, doc in documents():
        for path, value in scalars(doc):
            if re.search(r"password|passwd|secret_key", path.rsplit(".", 1)[-1], re.I):
                raise AssertionError(f"{file}: {path} holds a value")
            for match in re.finditer(r"://[^:/@\s]+:([^@\s]*)@", str(value)):
                assert re.fullmatch(r"\$\(\w+\)", match[1]), f"{file}: {path}"


@pytest.mark.parametrize(("kind", "name", "container"), CONTAINERS)
def test_secrets_come_from_secrets(kind, name, container):
    for entry in containers(kind, name)[container].get("env", []):
        if re.search(r"PASSWORD|SECRET|TOKEN", entry["name"]):
            assert "secretKeyRef" in entry.get("valueFrom", {}), entry["name"]


# --- The Cluster ---------------------------------------------------------------------


def test_cluster_has_replicas_and_no_superuser_login():
    spec = cluster()["spec"]
    assert spec["instances"] >= 3  # a primary and two replicas
    assert spec.get("enableSuperuserAccess") is False
    name, tag = image_name_and_tag(spec["imageName"])
    assert name == "ghcr.io/cloudnative-pg/postgresql"
    compose_db = image_version(service("db")["image"])
    assert len(image_version(spec["imageName"])) >= 2, tag  # no moving major tag
    assert image_version(spec["imageName"])[0] == compose_db[0]


def init_statements() -> list[str]:
    """The statements of deploy/initdb/10-roles.sql that create or grant, one line
    each, its database variable filled in."""
    text = re.sub(r"DO \$\$.*?\$\$;", "", INIT_SCRIPT.read_text(), flags=re.S)
    # A psql meta-command (\\gset, \\if...) ends the statement before it.
    lines = [
        ";" if line.lstrip().startswith("\\") else line
        for line in text.splitlines()
        if not line.lstrip().startswith("--")
    ]
    database = cluster()["spec"]["bootstrap"]["initdb"]["database"]
    statements = " ".join(lines).replace(':"database_name"', database).split(";")
    return [" ".join(s.split()) for s in statements if s.split()]


def test_cluster_makes_compose_s_database_and_owner():
    initdb = cluster()["spec"]["bootstrap"]["initdb"]
    assert initdb["owner"] == OWNER_ROLE
    database = initdb["database"]
    assert f"ALTER DATABASE {database} OWNER TO {OWNER_ROLE}" in init_statements()
    assert initdb["secret"]["name"]


def test_cluster_grants_what_the_init_script_grants():
    initdb = cluster()["spec"]["bootstrap"]["initdb"]
    applied = [" ".join(s.split()) for s in initdb["postInitApplicationSQL"]]
    wanted = [
        s
        for s in init_statements()
        if s.startswith(("GRANT", "REVOKE", "ALTER SCHEMA", "ALTER DEFAULT"))
    ]
    assert wanted
    assert applied == [f"CREATE ROLE {SITE_ROLE} NOLOGIN", *wanted]


def test_site_role_has_the_init_script_s_attributes():
    (create,) = [
        s for s in init_statements() if s.startswith(f"CREATE ROLE {SITE_ROLE} ")
    ]
    attributes = {"LOGIN", "SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION"}
    attributes |= {"BYPASSRLS"}
    wanted = {a.lower(): a in create.split() for a in attributes}
    for attribute in attributes:
        assert attribute in create.split() or f"NO{attribute}" in create.split()
    (role,) = [
        r for r in cluster()["spec"]["managed"]["roles"] if r["name"] == SITE_ROLE
    ]
    assert {key: role.get(key) for key in wanted} == wanted
    assert role["ensure"] == "present"
    assert role["passwordSecret"]["name"]
    initdb = cluster()["spec"]["bootstrap"]["initdb"]
    assert role["passwordSecret"]["name"] != initdb["secret"]["name"]


def test_the_database_side_holds_none_of_the_site_s_secrets():
    site_secrets = {
        entry["valueFrom"]["secretKeyRef"]["name"]
        for kind, name, container in CONTAINERS
        for entry in containers(kind, name)[container].get("env", [])
        if entry["name"] == "DJANGO_SECRET_KEY"
    }
    assert site_secrets
    for doc in [cluster(), *resources("Pooler")]:
        text = yaml.safe_dump(doc)
        assert "DJANGO_" not in text
        assert not any(name in text for name in site_secrets)


# --- The Poolers ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rw", "ro"])
def test_pooler_fronts_the_cluster(kind):
    found = pooler(kind)
    assert found["spec"]["cluster"]["name"] == cluster()["metadata"]["name"]
    assert found["metadata"]["name"] != cluster()["metadata"]["name"]
    assert found["spec"]["instances"] >= 2  # one PgBouncer pod may go at a time


def pooler_image(found: dict[str, Any]) -> str:
    (container,) = [
        c
        for c in found["spec"]["template"]["spec"]["containers"]
        if c["name"] == "pgbouncer"
    ]
    image: str = container["image"]
    return image


@pytest.mark.parametrize("kind", ["rw", "ro"])
def test_pooler_runs_the_pgbouncer_the_site_is_told(kind):
    image = pooler_image(pooler(kind))
    name, _ = image_name_and_tag(image)
    assert name == "ghcr.io/cloudnative-pg/pgbouncer"
    assert image_version(image) >= (1, 25, 2)  # CVE-2026-6664..6667, as Compose
    assert (
        ".".join(map(str, image_version(image))) == site_settings()["PGBOUNCER_VERSION"]
    )


def pooler_config(found: dict[str, Any], env: dict[str, str]) -> PgBouncerConfig:
    """What the renderer makes of `env`, for the Pooler's PgBouncer."""
    version = pgbouncer_version_parse(
        ".".join(map(str, image_version(pooler_image(found))))
    )
    upstream = f"postgres://u:p@{cluster()['metadata']['name']}-rw:5432/app"
    return pgbouncer_config_from_env(
        {"POSTGRES_DATABASE_URL": upstream, **env}, version=version, auth_file="-"
    )


@pytest.mark.parametrize("kind", ["rw", "ro"])
def test_pooler_parameters_are_what_the_renderer_writes(kind):
    found = pooler(kind)
    bouncer = found["spec"]["pgbouncer"]
    parameters = bouncer.get("parameters", {})
    assert sorted(set(parameters) - POOLER_PARAMETERS) == []
    # Each value passes the renderer's own checks, for this PgBouncer release,
    # and reads back unchanged.
    env = {key.upper(): str(value) for key, value in parameters.items()}
    config = pooler_config(found, env | {"POOL_MODE": bouncer["poolMode"]})
    assert {key: config.setting(key) for key in parameters} == parameters
    # Each key the renderer writes by default is written here, to the same value.
    defaults = dict(pooler_config(found, {}).settings)
    assert set(defaults) - POOLER_PARAMETERS - {"pool_mode"} <= set(OPERATOR_WRITES)
    assert set(OPERATOR_WRITES) <= set(defaults)
    assert bouncer["poolMode"] == defaults.pop("pool_mode")
    for key, value in defaults.items():
        wanted = None if key in OPERATOR_WRITES else value
        assert parameters.get(key) == wanted, key


def test_the_site_is_told_the_poolers_mode():
    assert site_settings()["POOL_MODE"] == pooler("rw")["spec"]["pgbouncer"]["poolMode"]


def test_poolers_hold_the_web_tier_and_fit_postgres():
    web = resource("Deployment", "web")["spec"]["replicas"]
    threads = int(site_settings()["WEB_CONCURRENCY"]) * int(
        site_settings()["GUNICORN_THREADS"]
    )
    max_connections = int(
        cluster()["spec"]["postgresql"]["parameters"]["max_connections"]
    )
    for found in resources("Pooler"):
        parameters = found["spec"]["pgbouncer"]["parameters"]
        # A Service spreads connections over the PgBouncer pods at random: any
        # one of them may get the whole tier (a connection per gunicorn thread).
        assert web * threads <= int(parameters["max_client_conn"])
        servers = int(parameters["max_db_connections"])
        assert int(parameters["default_pool_size"]) <= servers
        # rw's pods all log in to the primary; ro's pods may all pick one replica.
        assert found["spec"]["instances"] * servers < (
            max_connections - RESERVED_CONNECTIONS
        )


# --- The site's pods -----------------------------------------------------------------


def declared(kind: str, name: str, container: str) -> set[str]:
    return set(container_env(kind, name, container))


def test_web_sets_every_variable_the_code_reads_or_says_why_not():
    here = declared("Deployment", "web", "web")
    missing = variables_read("config") - here
    assert sorted(missing - set(LEFT_AT_DEFAULT)) == []
    assert sorted(set(LEFT_AT_DEFAULT) & here) == []


@pytest.mark.parametrize(
    ("kind", "name", "container"),
    [("Deployment", "web", "wait-for-migrations"), ("Job", "migrate", "migrate")],
)
def test_migrations_get_every_setting(kind, name, container):
    # Compose's migrate service: the settings, but not the pool's URL nor the
    # site's console and metrics.
    unused = {
        "DATABASE_URL",
        "PGBOUNCER_ADMIN_URL",
        "PGBOUNCER_ADMIN_URLS",
        "METRICS_TOKEN",
    }
    here = declared(kind, name, container)
    missing = SETTINGS_VARIABLES - unused - here
    assert sorted(missing - set(LEFT_AT_DEFAULT)) == []
    assert sorted(set(LEFT_AT_DEFAULT) & here) == []


READERS = {
    "wait-for-migrations": SETTINGS_VARIABLES,
    "web": variables_read("config"),
    "migrate": SETTINGS_VARIABLES,
}


@pytest.mark.parametrize(("kind", "name", "container"), CONTAINERS)
def test_each_container_gets_only_what_it_reads(kind, name, container):
    extra = declared(kind, name, container) - READERS[container]
    assert sorted(extra) == sorted(url_parts(kind, name, container))


def site_role_secret() -> str:
    (role,) = [
        r for r in cluster()["spec"]["managed"]["roles"] if r["name"] == SITE_ROLE
    ]
    name: str = role["passwordSecret"]["name"]
    return name


def owner_secret() -> str:
    name: str = cluster()["spec"]["bootstrap"]["initdb"]["secret"]["name"]
    return name


@pytest.mark.parametrize(
    ("kind", "name", "container", "variable", "host", "role"),
    [
        ("Deployment", "web", "web", "DATABASE_URL", "pooler", SITE_ROLE),
        ("Deployment", "web", "web", "DIRECT_DATABASE_URL", "primary", SITE_ROLE),
        (
            "Deployment",
            "web",
            "wait-for-migrations",
            "DATABASE_URL",
            "pooler",
            SITE_ROLE,
        ),
        (
            "Deployment",
            "web",
            "wait-for-migrations",
            "DIRECT_DATABASE_URL",
            "primary",
            SITE_ROLE,
        ),
        ("Job", "migrate", "migrate", "DIRECT_DATABASE_URL", "primary", OWNER_ROLE),
    ],
    ids=["web-pooled", "web-direct", "wait-pooled", "wait-direct", "migrate-direct"],
)
def test_url_reaches_its_service_as_its_role(
    kind, name, container, variable, host, role
):
    hosts = {
        "pooler": pooler("rw")["metadata"]["name"],
        "primary": f"{cluster()['metadata']['name']}-rw",
    }
    secrets = {SITE_ROLE: site_role_secret(), OWNER_ROLE: owner_secret()}
    url = postgres_url_parse(
        container_env(kind, name, container)[variable], variable=variable
    )
    assert (url.host, url.port) == (hosts[host], POSTGRES_PORT)
    assert url.name == cluster()["spec"]["bootstrap"]["initdb"]["database"]
    assert (url.user, url.password) == (role, f"secret-{secrets[role]}-password")
    assert dict(url.params).get("sslmode") == "require"


def test_the_site_never_holds_the_owner_s_password():
    text = yaml.safe_dump(resource("Deployment", "web"))
    assert owner_secret() not in text
    assert f"{OWNER_ROLE}:" not in text  # in no URL either


def test_the_web_service_reaches_the_web_port():
    deployment = resource("Deployment", "web")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = resource("Service", "web")
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = containers("Deployment", "web")["web"]["ports"]
    (exposed,) = svc["spec"]["ports"]
    assert exposed["targetPort"] in (port["name"], port["containerPort"])
    env = container_env("Deployment", "web", "web")
    assert int(env["WEB_PORT"]) == port["containerPort"]
    assert env["WEB_HOST"] == "0.0.0.0"  # noqa: S104 - in its pod


@pytest.mark.parametrize(
    ("probe", "view"),
    [
        ("startupProbe", "healthz"),
        ("livenessProbe", "healthz"),
        ("readinessProbe", "readyz"),
    ],
)
def test_probe_reaches_its_view(probe, view):
    web = containers("Deployment", "web")["web"]
    get = web[probe]["httpGet"]
    assert resolve(get["path"]).url_name == view
    assert get["port"] in (web["ports"][0]["name"], web["ports"][0]["containerPort"])
    # Django answers 400 to a Host it does not allow, and the kubelet sends the
    # pod's address unless told otherwise.
    (host,) = [h["value"] for h in get.get("httpHeaders", []) if h["name"] == "Host"]
    assert host in site_settings()["DJANGO_ALLOWED_HOSTS"].split(",")
    # The probe speaks plain HTTP: a redirect to HTTPS would fail it.
    assert any(
        re.search(p, get["path"].lstrip("/")) for p in settings.SECURE_REDIRECT_EXEMPT
    )


def dockerfile_uid() -> int:
    match = re.search(r"useradd\b[^&;]*--uid (\d+)", DOCKERFILE.read_text())
    assert match, "deploy/Dockerfile's useradd names no uid"
    return int(match[1])


@pytest.mark.parametrize(("kind", "name"), [("Deployment", "web"), ("Job", "migrate")])
def test_pods_run_unprivileged_on_a_read_only_root(kind, name):
    spec = pod_spec(kind, name)
    assert spec["automountServiceAccountToken"] is False
    context = spec["securityContext"]
    assert context["runAsNonRoot"] is True
    # The image's USER is a name, which the kubelet cannot check: the uid must be
    # given, and be the image's own (its files are that user's).
    assert context["runAsUser"] == dockerfile_uid()
    writable = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    for container in containers(kind, name).values():
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        # gunicorn's heartbeat files and the metrics folder go to /tmp.
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        assert mounts.get(str(TMP)) in writable, container["name"]


def test_metrics_folder_is_writable():
    env = container_env("Deployment", "web", "web")
    assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).is_relative_to(TMP)


def test_every_pod_runs_compose_s_image():
    images = {
        c["image"]
        for kind, name in [("Deployment", "web"), ("Job", "migrate")]
        for c in containers(kind, name).values()
    }
    assert images == {service("web")["image"]}
    (image,) = images
    assert image_name_and_tag(image)[1] not in ("", "latest")


@pytest.mark.parametrize(
    ("kind", "name", "container", "expected"),
    [
        ("Deployment", "web", "web", "gunicorn -c config/gunicorn.py"),
        ("Job", "migrate", "migrate", "python manage.py migrate --noinput"),
        (
            "Deployment",
            "web",
            "wait-for-migrations",
            "python manage.py migrate --check --noinput",
        ),
    ],
    ids=["web", "migrate", "wait-for-migrations"],
)
def test_container_runs_through_the_entrypoint(
    tmp_path, kind, name, container, expected
):
    spec = containers(kind, name)[container]
    assert "command" not in spec  # the image's entry point stays PID 1's parent
    returncode, calls = entrypoint_run(tmp_path, *spec["args"])
    assert returncode == 0
    assert calls == [(expected, "exec")]


def test_jobs_run_once_and_web_survives_a_rollout():
    assert pod_spec("Job", "migrate")["restartPolicy"] in ("Never", "OnFailure")
    strategy = resource("Deployment", "web")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert resource("Deployment", "web")["spec"]["replicas"] >= 2


# --- On a real PostgreSQL -------------------------------------------------------------
#
# What the operator does at bootstrap, done by hand on a fresh local cluster: the
# owner, its database, postInitApplicationSQL as the superuser, then the managed
# role's login and password. Then the pods' commands with their environments, the
# Services pointed at the local server.


@dataclass
class Bootstrapped:
    postgres: Postgres
    passwords: dict[str, str]  # by Secret name

    def env(self, kind: str, name: str, container: str) -> dict[str, str]:
        """A container's environment with its Secrets' values, its URLs on the
        local server (which has no TLS)."""
        env = container_env(kind, name, container)
        for secret, password in self.passwords.items():
            env = {
                k: v.replace(f"secret-{secret}-password", password)
                for k, v in env.items()
            }
        env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
        for variable, value in env.items():
            if variable.endswith("_URL"):
                env[variable] = (
                    postgres_url_parse(value, variable=variable)
                    .with_(
                        host="127.0.0.1",
                        port=self.postgres.config.port,
                        params=(("sslmode", "disable"),),
                    )
                    .url()
                )
        return env

    def connect(self, role: str, dbname: str) -> psycopg.Connection[Any]:
        if role == SUPERUSER:
            url = self.postgres.config.superuser_url(dbname).url()
        else:
            env = self.env("Job", "migrate", "migrate")
            url = (
                postgres_url_parse(env["DIRECT_DATABASE_URL"], variable="x")
                .with_(user=role, password=self.passwords[secret_of(role)], name=dbname)
                .url()
            )
        return psycopg.connect(url, autocommit=True)


def secret_of(role: str) -> str:
    return {SITE_ROLE: site_role_secret(), OWNER_ROLE: owner_secret()}[role]


@pytest.fixture(scope="module")
def bootstrapped() -> Iterator[Bootstrapped]:
    root = scratch_dir("test-kubernetes-")
    try:
        postgres = Postgres(
            PostgresConfig(
                datadir=root / "data",
                port=port_pick(),
                superuser_password=secrets.token_urlsafe(24),
                account=Account.for_servers(),
                durable=False,
            )
        )
    except ServersMissing as error:
        shutil.rmtree(root, ignore_errors=True)
        missing_servers(str(error))
    passwords = {
        secret_of(r): secrets.token_urlsafe(24) for r in (SITE_ROLE, OWNER_ROLE)
    }
    found = Bootstrapped(postgres, passwords)
    initdb = cluster()["spec"]["bootstrap"]["initdb"]
    try:
        postgres.start()
        with found.connect(SUPERUSER, "postgres") as conn:
            owner, database = (
                sql.Identifier(OWNER_ROLE),
                sql.Identifier(initdb["database"]),
            )
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    owner, sql.Literal(passwords[owner_secret()])
                )
            )
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, owner))
        with found.connect(SUPERUSER, initdb["database"]) as conn:
            for statement in initdb["postInitApplicationSQL"]:
                conn.execute(statement)
            conn.execute(
                sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(SITE_ROLE),
                    sql.Literal(passwords[site_role_secret()]),
                )
            )
        yield found
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def pod_run(db: Bootstrapped, kind: str, name: str, container: str) -> int:
    args = containers(kind, name)[container]["args"]
    command = ["migrate", "--noinput"] if args == ["migrate"] else args[2:]
    assert args == ["migrate"] or args[:2] == ["python", "manage.py"], args
    result = manage(command, db.env(kind, name, container))
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode


@pytest.mark.servers
def test_web_pods_wait_for_the_migrate_job_and_run_as_the_site_s_role(bootstrapped):
    db = bootstrapped
    waiting = ("Deployment", "web", "wait-for-migrations")
    assert pod_run(db, *waiting) == 1  # nothing migrated: the pod waits
    assert pod_run(db, "Job", "migrate", "migrate") == 0
    assert pod_run(db, *waiting) == 0
    database = cluster()["spec"]["bootstrap"]["initdb"]["database"]
    with db.connect(SITE_ROLE, database) as conn:
        conn.execute(
            "INSERT INTO core_post (title, content, created_at, updated_at) "
            "VALUES ('t', 'c', now(), now())"
        )
        assert conn.execute("SELECT count(*) FROM core_post").fetchone() == (1,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE mine (id int)")
    with db.connect(SUPERUSER, database) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert owners == [(OWNER_ROLE,)]


def spread_selector(spec: dict[str, Any]) -> dict[str, str]:
    """The pods a pod spec spreads itself away from, node by node."""
    (spread,) = [
        s
        for s in spec.get("topologySpreadConstraints", [])
        if s["topologyKey"] == "kubernetes.io/hostname"
    ]
    assert spread["maxSkew"] == 1
    selector: dict[str, str] = spread["labelSelector"]["matchLabels"]
    return selector


def test_each_tier_spreads_over_nodes():
    affinity = cluster()["spec"]["affinity"]
    assert affinity["enablePodAntiAffinity"] is True
    assert affinity["topologyKey"] == "kubernetes.io/hostname"
    web = resource("Deployment", "web")["spec"]["template"]
    assert spread_selector(web["spec"]).items() <= web["metadata"]["labels"].items()
    for found in resources("Pooler"):
        # The operator labels a Pooler's pods with its name.
        selector = spread_selector(found["spec"]["template"]["spec"])
        assert selector == {"cnpg.io/poolerName": found["metadata"]["name"]}
