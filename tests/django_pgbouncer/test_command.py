"""`manage.py pgbouncer_config` from a shell: exit codes, messages, no secrets."""

import os
import subprocess
import sys

import pytest

from devstack.stack import PROJECT_DIR

SECRET = "Sup3r-s3cret-pw"


def command(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_DATABASE_URL",)}
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT_DIR / "manage.py"),
            "pgbouncer_config",
            "--output-dir",
            str(tmp_path),
            "--pgbouncer-version",
            "1.18",
        ],
        capture_output=True,
        text=True,
        env={**base, **env},
        check=False,
        cwd=PROJECT_DIR,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        (
            {"POSTGRES_DATABASE_URL": f"postgres://app:{SECRET}@db:notaport/app"},
            "POSTGRES_DATABASE_URL",
        ),
        (
            {"POSTGRES_DATABASE_URL": f"mysql://app:{SECRET}@db/app"},
            "POSTGRES_DATABASE_URL",
        ),
        (
            {
                "POSTGRES_DATABASE_URL": f"postgres://app:{SECRET}@db/app",
                "POOL_MODE": "fast",
            },
            "POOL_MODE",
        ),
        (
            {
                "POSTGRES_DATABASE_URL": f"postgres://app:{SECRET}@db/app",
                "DEFAULT_POOL_SIZE": "twenty",
            },
            "DEFAULT_POOL_SIZE",
        ),
        (
            {
                "POSTGRES_DATABASE_URL": f"postgres://app:{SECRET}@db/app",
                "MAX_PREPARED_STATEMENTS": "10",
            },
            "MAX_PREPARED_STATEMENTS",
        ),
        ({}, "POSTGRES_DATABASE_URL"),
    ],
    ids=[
        "bad-port",
        "bad-scheme",
        "bad-pool-mode",
        "non-numeric-size",
        "too-new-for-1.18",
        "missing-upstream",
    ],
)
def test_malformed_variable_exits_nonzero_naming_it(tmp_path, env, variable):
    result = command(tmp_path, **env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{variable}: " in output
    assert "Fix: " in output
    assert SECRET not in output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


def test_bad_site_settings_exit_cleanly(tmp_path):
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), "check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"postgres://app:{SECRET}@pgbouncer:x/app",
        },
    )
    assert result.returncode != 0
    assert "DATABASE_URL: the port is not a number" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
