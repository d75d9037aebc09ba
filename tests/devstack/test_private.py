"""What `make run` keeps private: its folder and every folder in it 0700, its logs
and other files 0600, also where an older run left them looser; its passwords,
which no process has on its command line; and the site's role, which may not
create databases (the tests' throwaway stacks' may: Django's test runner creates
its test databases)."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from devstack.stack import APP_USER
from tests.devstack.runs import Run, ports_pick
from tests.fixtures.acl import acl_user_ids

pytestmark = pytest.mark.servers

# What an older devstack left: folders anyone could list, logs anyone could read.
LOOSE_FOLDERS = {"": 0o755, "postgres": 0o755, "pgbouncer": 0o777, "metrics": 0o755}
LOOSE_FILES = {
    "web.log": 0o644,
    "postgres/postgres.log": 0o666,
    "pgbouncer/pgbouncer.log": 0o644,
    "run.pid": 0o644,
}


def server_uids() -> set[int]:
    """The accounts the servers run as when we are root."""
    if os.geteuid() != 0:
        return set()
    names = (os.environ.get("DEVSTACK_USER") or "postgres", "nobody")
    return {pwd.getpwnam(name).pw_uid for name in names}


def group_entry(folder: Path) -> str:
    """The owning group's ACL entry (group::perms), or its mode bits without one."""
    listed = subprocess.run(
        ["getfacl", "--omit-header", "--absolute-names", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return next((e for e in listed if e.startswith("group::")), "")


def assert_private(root: Path) -> None:
    """Folders: the owner only (as root, the servers' accounts may pass the top
    one, by ACL, to reach their own); files: the owner only, 0600."""
    for folder in [root, *(p for p in root.iterdir() if p.is_dir())]:
        if folder.name == "data":
            continue
        mode = stat.S_IMODE(folder.lstat().st_mode)
        named = acl_user_ids(folder)
        if named:
            # The ACL's mask shows in the group bits: search only.
            assert mode == 0o710, (folder, oct(mode))
            assert named <= server_uids(), folder
            assert group_entry(folder) == "group::---", folder
        else:
            assert mode == 0o700, (folder, oct(mode))
    for folder in (root, root / "postgres", root / "pgbouncer"):
        for path in folder.iterdir():
            if path.is_file() and not path.is_symlink():
                mode = stat.S_IMODE(path.lstat().st_mode)
                assert mode == 0o600, (path, oct(mode))


def superuser_url(root: Path, port: int) -> str:
    password = json.loads((root / "secrets.json").read_text())["postgres_password"]
    return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"


def site_url(root: Path) -> str:
    lines = (root / "stack.env").read_text().split()
    return dict(line.split("=", 1) for line in lines)["DIRECT_DATABASE_URL"]


def assert_site_role_plain(root: Path, port: int) -> None:
    with psycopg.connect(superuser_url(root, port)) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
            "WHERE rolname = %s",
            [APP_USER],
        ).fetchone()
    assert row == (False, False, False)
    with (
        psycopg.connect(site_url(root), autocommit=True) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE DATABASE make_run_may_not")


def assert_no_secret_on_a_command_line(root: Path) -> None:
    """No process of the machine has one of the run's passwords in its argv, which
    every user may read (/proc/PID/cmdline, ps)."""
    secrets = list(json.loads((root / "secrets.json").read_text()).values())
    assert secrets
    seen = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        seen += str(root) in argv
        assert not [s for s in secrets if s in argv], f"pid {entry.name}"
    assert seen >= 2  # the run's servers were there to be seen


def loosen(root: Path) -> None:
    for name, mode in LOOSE_FOLDERS.items():
        (root / name).mkdir(exist_ok=True)
        (root / name).chmod(mode)
    for name, mode in LOOSE_FILES.items():
        (root / name).touch()
        (root / name).chmod(mode)


def test_run_makes_its_folder_private_again(scratch):
    root = scratch("test-run-private-modes-")
    loosen(root)
    ports = ports_pick()
    first = Run(root, ports)
    try:
        first.wait_ready()
        assert_private(root)
        assert_site_role_plain(root, ports["DEVSTACK_POSTGRES_PORT"])
        assert_no_secret_on_a_command_line(root)
        # An older devstack's role could create databases; its folder was open.
        with psycopg.connect(
            superuser_url(root, ports["DEVSTACK_POSTGRES_PORT"]), autocommit=True
        ) as conn:
            conn.execute(f"ALTER ROLE {APP_USER} CREATEDB")
    finally:
        assert first.stop() == 0
    loosen(root)
    (root / "secrets.json").chmod(0o644)
    second = Run(root, ports)
    try:
        second.wait_ready()
        assert_private(root)
        assert_site_role_plain(root, ports["DEVSTACK_POSTGRES_PORT"])
    finally:
        assert second.stop() == 0


def test_the_test_stack_s_role_may_create_databases(stack):
    """Django's test runner (`manage.py test`, tests/core) creates, copies and drops
    test databases as the site's role: that is what the throwaway stacks are for."""
    with psycopg.connect(stack.postgres.config.superuser_url().url()) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
            "WHERE rolname = %s",
            [stack.direct_url.user],
        ).fetchone()
    assert row == (False, True, False)
