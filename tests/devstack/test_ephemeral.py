"""devstack.ephemeral: throwaway stacks leave nothing behind, unless asked to keep
a failed one's logs."""

import shutil
from pathlib import Path

import pytest

from devstack.ephemeral import ephemeral_stack

pytestmark = pytest.mark.servers


def stack_fail(keep_on_error: bool, seen: list[Path]) -> None:
    with ephemeral_stack("test-ephemeral-", keep_on_error=keep_on_error) as stack:
        seen.append(stack.settings.root)
        assert (stack.settings.root / "pgbouncer" / "pgbouncer.ini").exists()
        raise RuntimeError("boom")


@pytest.mark.parametrize("keep_on_error", [False, True])
def test_a_failed_block_keeps_the_folder_only_when_asked(keep_on_error, capsys):
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"):
        stack_fail(keep_on_error, seen)
    (root,) = seen
    assert root.exists() is keep_on_error
    if keep_on_error:
        assert str(root) in capsys.readouterr().err
        shutil.rmtree(root)


def test_a_finished_block_leaves_nothing():
    with ephemeral_stack("test-ephemeral-", keep_on_error=True) as stack:
        root = stack.settings.root
    assert not root.exists()
