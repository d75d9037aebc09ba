"""django_pgbouncer.env: one parser for every environment variable."""

import pytest

from django_pgbouncer import ConfigError
from django_pgbouncer.env import (
    bool_parse,
    env_bool,
    env_int,
    env_list,
    env_port,
    int_parse,
    port_parse,
    seconds_parse,
    text_parse,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("42", 42), (" 7 ", 7), ("007", 7)],
    ids=["zero", "plain", "spaces", "leading-zeros"],
)
def test_int_parse_takes_ascii_digits(value, expected):
    assert int_parse("N", value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "-1", "1.5", "1e3", "\u00b2", "\u0663", "\uff11\uff12", "12abc", "0x10"],
    ids=[
        "empty",
        "negative",
        "fraction",
        "exponent",
        "superscript-two",
        "arabic-indic-three",
        "fullwidth",
        "trailing-letters",
        "hex",
    ],
)
def test_int_parse_refuses_what_is_not_plain_digits(value):
    with pytest.raises(ConfigError) as caught:
        int_parse("WORKERS", value)
    assert str(caught.value).startswith("WORKERS: ")
    assert "ASCII digits" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "minimum", "maximum", "ok"),
    [
        ("1", 1, None, True),
        ("0", 1, None, False),
        ("10", 0, 10, True),
        ("11", 0, 10, False),
    ],
    ids=["at-minimum", "below-minimum", "at-maximum", "above-maximum"],
)
def test_int_parse_bounds(value, minimum, maximum, ok):
    if ok:
        assert int_parse("N", value, minimum=minimum, maximum=maximum) == int(value)
    else:
        with pytest.raises(ConfigError, match="N: "):
            int_parse("N", value, minimum=minimum, maximum=maximum)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("1", True), ("65535", True), ("0", False), ("65536", False), ("70000", False)],
)
def test_port_parse(value, ok):
    if ok:
        assert port_parse("WEB_PORT", value) == int(value)
    else:
        with pytest.raises(ConfigError, match=r"WEB_PORT: .* is not a port number"):
            port_parse("WEB_PORT", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("1", True), ("TRUE", True), (" yes ", True), ("on", True)],
        *[("0", False), ("false", False), ("No", False), ("off", False)],
    ],
)
def test_bool_parse(value, expected):
    assert bool_parse("FLAG", value) is expected


@pytest.mark.parametrize("value", ["2", "y", "enabled", "\u0661"])
def test_bool_parse_refuses(value):
    with pytest.raises(ConfigError, match=r"FLAG: .* is not a boolean\. Fix: set FLAG"):
        bool_parse("FLAG", value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("30", True), ("0.5", True), ("-1", False), ("\u0663\u0660", False)],
)
def test_seconds_parse(value, ok):
    if ok:
        assert seconds_parse("T", value) == value
    else:
        with pytest.raises(ConfigError, match="T: "):
            seconds_parse("T", value)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"])
def test_text_parse_refuses_line_breaks(value):
    with pytest.raises(ConfigError, match="X: contains a line break"):
        text_parse("X", value)


def test_env_readers_use_the_default_when_unset_or_blank():
    env = {"BLANK": "  "}
    assert env_int(env, "UNSET", 3) == 3
    assert env_int(env, "BLANK", 3) == 3
    assert env_port(env, "UNSET", 8000) == 8000
    assert env_bool(env, "BLANK", True) is True
    assert env_list({"L": " a, ,b "}, "L") == ["a", "b"]


def test_env_readers_name_the_variable():
    with pytest.raises(ConfigError, match="WEB_PORT: '\u00b2' is not a port number"):
        env_port({"WEB_PORT": "²"}, "WEB_PORT", 8000)
    with pytest.raises(ConfigError, match="CONN_MAX_AGE: "):
        env_int({"CONN_MAX_AGE": "forever"}, "CONN_MAX_AGE", 600)
