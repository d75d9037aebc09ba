"""Where the checkout and a run's data are: the one module every entry point may
import cheaply (no Django), so that the restart asker starts fast."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["PROJECT_DIR", "root_from_env"]

PROJECT_DIR = Path(__file__).resolve().parent.parent


def root_from_env(env: Mapping[str, str]) -> Path:
    """A run's folder: DEVSTACK_DIR, else .devstack in the checkout."""
    return Path(env.get("DEVSTACK_DIR") or PROJECT_DIR / ".devstack").resolve()
