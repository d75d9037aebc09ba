"""errors.py: errors that name the fix, and redact(), the one secret scrubber."""

import pytest

from django_pgbouncer import ConfigError, redact

SECRET = "p@ss:w/rd#1"


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (f"login failed for {SECRET}", [SECRET], "login failed for ***"),
        (
            "postgres://app:p%40ss%3Aw%2Frd%231@db:5432/app refused",
            [SECRET],
            "postgres://app:***@db:5432/app refused",
        ),
        (
            "postgres://app:unknown-pw@db/app: no",
            [],
            "postgres://app:***@db/app: no",
        ),
        ("postgres://app@db/app", [], "postgres://app@db/app"),
        ("nothing secret here", ["", "absent"], "nothing secret here"),
        ("ab and abc", ["ab", "abc"], "*** and ***"),
    ],
    ids=[
        "secret-as-written",
        "secret-percent-encoded",
        "any-url-password",
        "url-without-password",
        "no-secret",
        "longest-first",
    ],
)
def test_redact(text, secrets, expected):
    assert redact(text, secrets) == expected


def test_config_error_names_variable_problem_and_fix():
    error = ConfigError("WEB_PORT", "'x' is not a port number", "set it to 8000")
    assert str(error) == "WEB_PORT: 'x' is not a port number. Fix: set it to 8000"
    assert (error.variable, error.fix) == ("WEB_PORT", "set it to 8000")
