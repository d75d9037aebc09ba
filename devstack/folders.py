"""Where the checkout and a run's data are, and how private they are kept: the one
module every entry point may import cheaply (no Django), so that the restart asker
starts fast."""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Mapping
from pathlib import Path

__all__ = [
    "PRIVATE_FILE_MODE",
    "PRIVATE_FOLDER_MODE",
    "PROJECT_DIR",
    "private_folder_ensure",
    "private_tree_ensure",
    "root_from_env",
]

PROJECT_DIR = Path(__file__).resolve().parent.parent
# A run's folder holds passwords (secrets.json, stack.env) and logs that may quote
# queries: its owner's alone. As root, the servers' accounts pass the top folder by
# a search-only ACL (devstack.reach), and own the folders they write in.
PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def root_from_env(env: Mapping[str, str]) -> Path:
    """A run's folder: DEVSTACK_DIR, else .devstack in the checkout."""
    return Path(env.get("DEVSTACK_DIR") or PROJECT_DIR / ".devstack").resolve()


def private_folder_ensure(path: Path) -> Path:
    """`path` made if missing, and 0700 whatever an earlier run left."""
    path.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_FOLDER_MODE)
    return path


def private_tree_ensure(root: Path, *, skip: Collection[Path] = ()) -> None:
    """Every folder under `root` 0700 and every file 0600, as an older devstack may
    have left them looser (umask 022 gave 0755 and 0644). Symbolic links, sockets
    and the folders in `skip` are left alone (PostgreSQL keeps its data folder's
    modes itself, and refuses to start on a looser one)."""
    private_folder_ensure(root)
    skipped = {str(path) for path in skip}
    for folder, folders, files in os.walk(root):
        folders[:] = [n for n in folders if os.path.join(folder, n) not in skipped]
        for name in folders:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, PRIVATE_FOLDER_MODE)
        for name in files:
            path = os.path.join(folder, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, PRIVATE_FILE_MODE)
