"""Fixtures of devstack's tests: scratch folders that go after the test, and the
machine's folders left as open as they were found."""

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.ephemeral import scratch_dir
from tests.fixtures.acl import acls_kept, checkout_folders


@pytest.fixture(autouse=True)
def acl_untouched() -> Iterator[None]:
    """As root, a run from this checkout may grant its accounts search access to the
    folders above it (/root); such grants are taken back after each test."""
    with acls_kept(checkout_folders()):
        yield


@pytest.fixture
def scratch() -> Iterator[Callable[..., Path]]:
    """`scratch(prefix, mode=0o755)`: a new folder, deleted after the test with
    everything in it (the servers' data, and any ACL granted on it)."""
    made: list[Path] = []

    def make(prefix: str, mode: int = 0o755) -> Path:
        path = scratch_dir(prefix)
        path.chmod(mode)
        made.append(path)
        return path

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)
