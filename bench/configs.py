"""The configurations bench.harness compares: each a server command and its
environment, all against one shared Stack (PostgreSQL + PgBouncer).

The web servers are devstack's own: `web_child` (gunicorn with config/gunicorn.py,
as `make run` starts it) and a `Child` for `manage.py runserver`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from devstack.process import Account, Child
from devstack.stack import PROJECT_DIR, Stack, run_env, web_child

# The only variables a child inherits from the harness's own environment: anything
# the site reads (CONN_MAX_AGE, WEB_CONCURRENCY, ...) comes from the configuration.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
RUNSERVER = "runserver"
GUNICORN = "gunicorn"


@dataclass(frozen=True)
class Configuration:
    key: str  # "1" .. "7", or a variant's "6a", "6b" ...
    name: str
    server: str  # RUNSERVER or GUNICORN
    env: Mapping[str, str] = field(repr=False)
    # Overrides of the production environment, shown in reports for variants.
    overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.key}. {self.name}"


def environ_passthrough(environ: Mapping[str, str]) -> dict[str, str]:
    return {key: environ[key] for key in PASSTHROUGH if key in environ}


def bench_env(stack: Stack, environ: Mapping[str, str]) -> dict[str, str]:
    """The common ground of configurations 1-5 and 7."""
    return {
        **environ,
        **stack.site_env(),
        "DJANGO_DEBUG": "0",
        "DJANGO_HTTPS": "0",
        "DJANGO_SECRET_KEY": stack.secrets["django_secret_key"],
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }


def configurations(
    stack: Stack,
    environ: Mapping[str, str],
    everywhere: Mapping[str, str] | None = None,
) -> list[Configuration]:
    """The seven configurations, in the order the harness interleaves them;
    `everywhere`: variables added to each (a proposed default, measured alike)."""
    chosen = _seven(stack, environ)
    if not everywhere:
        return chosen
    return [
        Configuration(c.key, c.name, c.server, {**c.env, **everywhere}, everywhere)
        for c in chosen
    ]


def _seven(stack: Stack, environ: Mapping[str, str]) -> list[Configuration]:
    base = bench_env(stack, environ_passthrough(environ))
    direct = {**base, "DATABASE_URL": stack.direct_url.url(), "POOL_MODE": "session"}
    native = {"DJANGO_SETTINGS_MODULE": "bench.settings_native_pool"}
    ceiling = {"DJANGO_SETTINGS_MODULE": "bench.settings_ceiling"}
    # What `make run` hands gunicorn, from an environment that sets none of the
    # site's variables: the defaults themselves.
    ours = run_env(stack, environ_passthrough(environ))
    table = [
        ("seed: runserver, CONN_MAX_AGE=0, PgBouncer", RUNSERVER,
         {**base, "DJANGO_DEBUG": "1", "CONN_MAX_AGE": "0"}),
        ("gunicorn, direct, CONN_MAX_AGE=0", GUNICORN,
         {**direct, "CONN_MAX_AGE": "0"}),
        ("gunicorn, direct, CONN_MAX_AGE=600", GUNICORN,
         {**direct, "CONN_MAX_AGE": "600"}),
        ("gunicorn, direct, native psycopg pool", GUNICORN,
         {**direct, "CONN_MAX_AGE": "0", **native}),
        ("gunicorn, PgBouncer, CONN_MAX_AGE=0", GUNICORN,
         {**base, "CONN_MAX_AGE": "0"}),
        ("ours: make run's defaults, PgBouncer", GUNICORN, ours),
        ("ceiling: rows in memory, no database", GUNICORN, {**base, **ceiling}),
    ]  # fmt: skip
    return [
        Configuration(str(key), name, server, env)
        for key, (name, server, env) in enumerate(table, start=1)
    ]


def variant_parse(text: str) -> tuple[str, str, dict[str, str]]:
    """`'[BASE/]label:KEY=VALUE,...'` -> (base key, default 6; label; overrides)."""
    head, sep, assignments = text.partition(":")
    base, slash, label = head.partition("/")
    if not slash:
        base, label = "6", head
    pairs = [item.split("=", 1) for item in assignments.split(",") if item.strip()]
    if not sep or not label.strip() or any(len(p) != 2 for p in pairs):
        raise ValueError(
            f"--variant {text!r}: write it as '[BASE/]label:KEY=VALUE,KEY=VALUE', "
            "e.g. 'health checks:CONN_HEALTH_CHECKS=1' (of configuration 6) or "
            "'3/health checks:CONN_HEALTH_CHECKS=1' (of configuration 3)"
        )
    return base.strip(), label.strip(), {k.strip(): v.strip() for k, v in pairs}


def variants(
    chosen: list[Configuration], specs: list[tuple[str, str, dict[str, str]]]
) -> list[Configuration]:
    """Configurations with some variables changed: proposals, measured alike.
    Keys: the base's and a letter ("6a", "3b", ...)."""
    by_key = {c.key: c for c in chosen}
    out = []
    for i, (base_key, label, overrides) in enumerate(specs):
        if base_key not in by_key:
            raise ValueError(f"--variant: no configuration {base_key!r} to vary")
        base = by_key[base_key]
        out.append(
            Configuration(
                f"{base_key}{chr(ord('a') + i)}",
                f"{base.name.split(':')[0]} + {label}",
                base.server,
                {**base.env, **overrides},
                {**base.overrides, **overrides},
            )
        )
    return out


def server_child(stack: Stack, config: Configuration) -> Child:
    """The web server of `config`, on the stack's web port, not yet started."""
    if config.server == GUNICORN:
        return web_child(stack, config.env, account=Account())
    s = stack.settings
    return Child(
        "runserver",
        [
            sys.executable,
            str(PROJECT_DIR / "manage.py"),
            "runserver",
            "--noreload",
            f"{s.web_host}:{s.web_port}",
        ],
        log=s.root / "runserver.log",
        host=s.web_host,
        port=s.web_port,
        account=Account(),
        env=config.env,
        cwd=PROJECT_DIR,
    )
