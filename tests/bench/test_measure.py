"""bench.measure.wrk_parse: wrk's report read into numbers, on real output."""

import pytest

from bench.measure import wrk_parse

from .captured import sample_read


@pytest.mark.parametrize(
    ("out", "requests", "seconds", "p50_ms", "p99_ms"),
    [
        (sample_read("wrk-ok"), 1510, 1.0, 2.42, 11.44),
        (sample_read("wrk-503-and-closed"), 14400, 1.1, 0.224, 0.558),
        (sample_read("wrk-timeouts"), 40, 4.01, 51.98, 55.99),
        (sample_read("wrk-seconds"), 15, 3.01, 343.99, 1240.0),
    ],
    ids=["all-ok", "microseconds", "timeouts", "seconds-padded"],
)
def test_wrk_parse_reads_counts_and_percentiles(out, requests, seconds, p50_ms, p99_ms):
    result = wrk_parse(out)
    assert result.requests == requests
    assert result.seconds == pytest.approx(seconds)
    assert result.p50_ms == pytest.approx(p50_ms)
    assert result.p99_ms == pytest.approx(p99_ms)


@pytest.mark.parametrize(
    ("out", "non_2xx", "socket_errors", "good"),
    [
        (sample_read("wrk-ok"), 0, 0, 1510),
        (sample_read("wrk-all-non-2xx"), 2243, 0, 0),
        (sample_read("wrk-503-and-closed"), 4799, 14398, 14400 - 4799),
        (sample_read("wrk-timeouts"), 0, 16, 40),
    ],
    ids=["no-errors", "all-non-2xx", "non-2xx-and-read-errors", "timeouts"],
)
def test_wrk_parse_counts_only_2xx_3xx_as_throughput(out, non_2xx, socket_errors, good):
    result = wrk_parse(out)
    assert result.non_2xx == non_2xx
    assert result.socket_errors == socket_errors
    assert result.errors == non_2xx + socket_errors
    assert result.rps == pytest.approx(good / result.seconds)


@pytest.mark.parametrize(
    "out",
    [sample_read("wrk-all-non-2xx"), sample_read("wrk-nothing")],
    ids=["all-non-2xx", "nothing-completed"],
)
def test_wrk_parse_gives_no_latency_without_a_good_response(out):
    """wrk's percentiles then describe error pages, or nothing at all."""
    result = wrk_parse(out)
    assert result.rps == 0
    assert (result.p50_ms, result.p99_ms) == (None, None)


def test_wrk_parse_without_latency_section_has_no_percentiles():
    without = sample_read("wrk-ok").split("  Latency Distribution")[0] + (
        "  1510 requests in 1.00s, 275.93KB read\n"
    )
    result = wrk_parse(without)
    assert result.requests == 1510
    assert (result.p50_ms, result.p99_ms) == (None, None)


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("500.00ms", 0.5), ("10.00s", 10.0), ("1.50m", 90.0)],
    ids=["milliseconds", "seconds", "minutes"],
)
def test_wrk_parse_reads_every_duration_unit(duration, seconds):
    out = sample_read("wrk-ok").replace("in 1.00s", f"in {duration}")
    assert wrk_parse(out).seconds == pytest.approx(seconds)


@pytest.mark.parametrize(
    "out",
    [
        "",
        sample_read("wrk-refused"),
        sample_read("wrk-ok").replace("1510 requests", "many requests"),
        sample_read("wrk-ok").replace("in 1.00s", "in 1.00 fortnights"),
        sample_read("wrk-ok").replace("99%   11.44ms", "99%   11.44parsecs"),
    ],
    ids=[
        "empty",
        "connection-refused",
        "no-request-count",
        "unknown-duration-unit",
        "unknown-latency-unit",
    ],
)
def test_wrk_parse_refuses_malformed_output(out):
    with pytest.raises(ValueError, match="wrk"):
        wrk_parse(out)
