"""devstack.reach: as root, an account is let through exactly the folders that shut
it out, once, and told how to undo it; what cannot be granted is an error naming
the fix. As anyone else the account is ourselves, and nothing is granted."""

import os
import stat

import pytest

from devstack.errors import StackError
from devstack.process import Account
from devstack.reach import can_access, reach_ensure
from tests.fixtures.acl import acl_user_ids

ROOT = os.geteuid() == 0


@pytest.fixture(params=["servers", "web"])
def account(request):
    """The servers' account, and the web server's (as root: postgres and nobody)."""
    return Account.for_servers("nobody" if request.param == "web" else None)


def test_only_the_folders_that_shut_it_out_are_granted_once(account, scratch, capsys):
    private = scratch("test-reach-", mode=0o700)
    data = private / "open" / "data"
    data.mkdir(parents=True, mode=0o755)
    first = reach_ensure(account, [(data, "x")], what="the test's servers")
    out = capsys.readouterr().out
    if ROOT:
        assert first == [private]  # not the open folders below it, nor / or /tmp
        assert account.uid in acl_user_ids(private)
        assert stat.S_IMODE(private.stat().st_mode) & 0o007 == 0  # no chmod
        assert f"undo: setfacl -b {private}\n" in out  # it had no ACL before
    else:
        assert (first, out) == ([], "")
    assert reach_ensure(account, [(data, "x")], what="the test's servers") == []
    assert capsys.readouterr().out == ""
    assert can_access(account, data, "x")


def test_a_private_target_is_an_error_not_a_grant(account, scratch):
    private = scratch("test-reach-target-", mode=0o700)
    if not ROOT:
        assert reach_ensure(account, [(private, "rx")], what="the web server") == []
        return
    with pytest.raises(StackError) as caught:
        reach_ensure(account, [(private, "rx")], what="the web server")
    message = str(caught.value)
    assert f"may not list and enter {private} (mode 0o700" in message
    assert "Let others read the checkout" in message
    assert acl_user_ids(private) == set()


def test_without_setfacl_the_error_names_the_fix(account, scratch, monkeypatch):
    private = scratch("test-reach-noacl-", mode=0o700)
    (private / "data").mkdir(mode=0o755)
    monkeypatch.setenv("PATH", str(private))  # a PATH without setfacl
    if not ROOT:
        assert reach_ensure(account, [(private / "data", "x")], what="x") == []
        return
    with pytest.raises(StackError) as caught:
        reach_ensure(account, [(private / "data", "x")], what="PostgreSQL")
    message = str(caught.value)
    assert f"cannot enter {private} (mode 0o700" in message
    assert "setfacl is not installed. Install the acl package" in message
    assert "DEVSTACK_DIR" in message


def test_a_grant_widens_no_other_entry(scratch):
    """setfacl's own mask recalculation would let a named rwx entry, held to r-x by
    the mask, write; the grant keeps the mask as it was, plus search."""
    import subprocess

    private = scratch("test-reach-mask-", mode=0o700)
    (private / "data").mkdir(mode=0o755)
    nobody = Account.for_servers("nobody")
    if not ROOT:  # the account is then ourselves: nothing to grant
        assert reach_ensure(nobody, [(private / "data", "x")], what="x") == []
        return
    subprocess.run(["setfacl", "-m", "u:daemon:rwx,m::r-x", str(private)], check=True)
    assert reach_ensure(nobody, [(private / "data", "x")], what="x") == [private]
    acl = subprocess.run(
        ["getfacl", "--omit-header", "--absolute-names", str(private)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "mask::r-x" in acl
    assert "user:daemon:rwx\t#effective:r-x" in acl
    assert "user:nobody:--x" in acl
