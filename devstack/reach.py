"""Letting the servers' accounts into the checkout when the stack runs as root.

As root, PostgreSQL and PgBouncer run as `postgres` and gunicorn as `nobody`; a
checkout under a private folder (/root is 0700) shuts them out. Rather than ask the
user to move it, each account is granted search-only permission (x: it may pass
through, not list) on exactly the folders that shut it out, as one POSIX ACL entry
per folder. The ACL's mask is set by hand to what it was (or, with no ACL yet, to
the group's permission) plus x: setfacl's own recalculation would widen the mask,
and with it what other named entries may do (an r-x mask over a rwx entry would let
that entry write). `ls -l` then shows the mask in the group column (drwx--x---+).
The printed undo restores the folder: `setfacl -b` where it had no ACL before, else
`setfacl -x` of the one entry. A second run finds nothing shut and grants nothing.

Whether an account can pass a folder is asked of the kernel, as that account: a
`test -x` run with its uid and no supplementary groups, as the servers run. The
kernel knows about ACLs, groups and anything else that decides; mode bits alone lie.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import StackError
from .process import Account

__all__ = ["acl_grant", "can_access", "reach_ensure"]

# Prints the first folder of "$@" the account cannot pass; nothing if it passes all.
_FIRST_SHUT = 'for d do [ -x "$d" ] || { printf "%s\\n" "$d"; exit 0; }; done'


def _as_account(
    account: Account, script: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        ["/bin/sh", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        stdin=subprocess.DEVNULL,
        **account.popen_kwargs(),
    )


def can_access(account: Account, path: Path, access: str) -> bool:
    """Whether `account` may `access` ('r', 'w', 'x' or several) `path`."""
    script = " && ".join(f'[ -{flag} "$1" ]' for flag in access)
    return _as_account(account, script, str(path)).returncode == 0


def _first_shut(account: Account, folders: Sequence[Path]) -> Path | None:
    out = _as_account(account, _FIRST_SHUT, *map(str, folders)).stdout.strip()
    return Path(out) if out else None


def _mode(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return "unknown mode"
    return f"mode {oct(info.st_mode & 0o777)}, owner uid {info.st_uid}"


def _acl_entries(folder: Path) -> list[str]:
    result = subprocess.run(
        ["getfacl", "--omit-header", "--absolute-names", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return [line for line in result.stdout.split() if line.count(":") == 2]


def _mask_with_search(entries: Sequence[str]) -> str:
    """The mask an ACL has, or the group's permission where it has none, plus x."""
    kinds = {e.rsplit(":", 1)[0]: e.rsplit(":", 1)[1] for e in entries}
    now = kinds.get("mask:") or kinds.get("group:") or "---"
    return now[:2] + "x"


def acl_grant(account: Account, folder: Path, *, what: str) -> str:
    """Grant `account` search access to `folder` with an ACL entry, leaving what any
    other entry may do as it was; return the command that undoes it. A StackError
    naming the fixes if it cannot."""
    others = (
        "move the checkout out of it (or point DEVSTACK_DIR at a folder others can "
        "enter, for the data), or run as a normal user"
    )
    setfacl = shutil.which("setfacl")
    if setfacl is None or shutil.which("getfacl") is None:
        raise StackError(
            f"running as root, {what} run as {account.name!r}, which cannot enter "
            f"{folder} ({_mode(folder)}). devstack would grant it search-only access "
            f"with an ACL, but setfacl is not installed. Install the acl package "
            f"(apt-get install acl; devstack/bootstrap.sh does it as root), or "
            f"{others}."
        )
    entries = _acl_entries(folder)
    extended = any(e.startswith("mask:") for e in entries)
    spec = f"u:{account.name}:x,m::{_mask_with_search(entries)}"
    result = subprocess.run(
        [setfacl, "-m", spec, str(folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise StackError(
            f"running as root, {what} run as {account.name!r}, which cannot enter "
            f"{folder} ({_mode(folder)}), and granting it search-only access failed: "
            f"setfacl -m {spec} {folder}: "
            f"{(result.stdout + result.stderr).strip()}. The filesystem may not "
            f"support ACLs (mount it with the acl option), or {others}."
        )
    if extended:
        return f"setfacl -x u:{account.name} {folder}"
    return f"setfacl -b {folder}"


def _verb(path: Path, access: str) -> str:
    if path.is_dir():
        return "list and enter" if "r" in access else "enter"
    return {"r": "read", "x": "run", "w": "write"}.get(access, f"open ({access})")


def _reach_one(
    account: Account, target: Path, access: str, *, what: str
) -> list[tuple[Path, str]]:
    # The folders above the target, as they really are (symlinks resolved): the
    # target itself is checked as named, so a symlink's destination must be a
    # target of its own.
    parent = Path(os.path.abspath(target)).parent.resolve()
    chain = [*reversed(parent.parents), parent]
    granted: list[tuple[Path, str]] = []
    while (shut := _first_shut(account, chain)) is not None:
        if shut in [folder for folder, _ in granted]:
            raise StackError(
                f"{what} run as {account.name!r}, which still cannot enter {shut} "
                f"after an ACL granted it search access ({_mode(shut)}); something "
                f"else (a security module, the mount) refuses it. Move the checkout, "
                f"or run as a normal user."
            )
        granted.append((shut, acl_grant(account, shut, what=what)))
    if not can_access(account, target, access):
        raise StackError(
            f"{what} run as {account.name!r}, which may not {_verb(target, access)} "
            f"{target} ({_mode(target)}). Let others read the checkout and its .venv "
            f"(git and pip make them readable unless umask says otherwise), or run as "
            f"a normal user."
        )
    return granted


def reach_ensure(
    account: Account, targets: Sequence[tuple[Path, str]], *, what: str
) -> list[Path]:
    """Let `account` reach each `(path, access)` of `targets`; return the folders
    newly granted search access. The folders above a path are let through with an
    ACL where they shut it out; the path itself must already allow `access`.

    No-op when we are not root (the account is then ourselves)."""
    if account.uid is None:
        return []
    granted: list[tuple[Path, str]] = []
    for target, access in targets:
        granted += _reach_one(account, target, access, what=what)
    if granted:
        folders = " ".join(str(folder) for folder, _ in granted)
        undo = "; ".join(command for _, command in granted)
        print(
            f"Granted {account.name!r} ({what}) search-only access (ACL "
            f"u:{account.name}:x) to {folders}; undo: {undo}",
            flush=True,
        )
    return [folder for folder, _ in granted]
