"""django_pgbouncer.env: one parser for every environment variable."""

import pytest

from django_pgbouncer import ConfigError
from django_pgbouncer.env import (
    INT_MAX,
    bool_parse,
    env_bool,
    env_int,
    env_list,
    env_port,
    int_parse,
    port_parse,
    seconds_parse,
    text_parse,
    version_parse,
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


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("a\nb", "U+000A"),
        ("a\rb", "U+000D"),
        ("a\0b", "U+0000"),
        ("a\tb", "U+0009"),
        ("a\x0bb", "U+000B"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("a\u2028b", "U+2028"),
        ("a\u200eb", "U+200E"),
        ("a\udcffb", "U+DCFF"),
    ],
    ids=[
        "newline",
        "carriage-return",
        "nul",
        "tab",
        "vertical-tab",
        "delete",
        "next-line",
        "line-separator",
        "left-to-right-mark",
        "byte-not-utf8",
    ],
)
def test_text_parse_refuses_control_characters(value, shown):
    with pytest.raises(ConfigError) as caught:
        text_parse("X", value)
    message = str(caught.value)
    assert message.startswith("X: the value contains a line break or other control")
    assert f"({shown})" in message
    assert value not in message


@pytest.mark.parametrize("value", ["db.internal", "ünïcødé", "a b", "'q' \"q\" ;#"])
def test_text_parse_takes_printable_text(value):
    assert text_parse("X", f" {value} ") == value


@pytest.mark.parametrize(
    ("value", "ok"),
    [(str(INT_MAX), True), (str(INT_MAX + 1), False), ("4294967297", False)],
    ids=["int-max", "int-max-plus-one", "wraps-to-one-in-pgbouncer"],
)
def test_int_parse_stops_at_the_largest_c_int(value, ok):
    if ok:
        assert int_parse("MAX_CLIENT_CONN", value) == INT_MAX
    else:
        with pytest.raises(ConfigError, match=f"from 0 to {INT_MAX}"):
            int_parse("MAX_CLIENT_CONN", value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0.000001", True),
        ("0.0000001", False),
        (str(INT_MAX), True),
        ("2147483648", False),
        ("99999999999999999999", False),
        ("1e3", False),
    ],
    ids=[
        "microsecond",
        "below-a-microsecond",
        "int-max",
        "int-max-plus-one",
        "wraps-to-zero-in-pgbouncer",
        "exponent",
    ],
)
def test_seconds_parse_keeps_to_what_pgbouncer_holds(value, ok):
    if ok:
        assert seconds_parse("QUERY_TIMEOUT", value) == value
    else:
        with pytest.raises(ConfigError, match=r"QUERY_TIMEOUT: .* is not a number"):
            seconds_parse("QUERY_TIMEOUT", value)


@pytest.mark.parametrize("value", ["\u0661.\u0661\u0668", "1.\u00b2", "\uff11.18"])
def test_version_parse_takes_ascii_digits_only(value):
    with pytest.raises(ConfigError, match=r"PGBOUNCER_VERSION: .* is not a PgBouncer"):
        version_parse(value)


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
