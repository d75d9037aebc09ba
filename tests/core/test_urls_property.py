"""Every URL of the site, with generated paths, query strings and headers, sent raw
to gunicorn in front of PgBouncer and PostgreSQL: every answer is 2xx, 3xx or 4xx.

The requests are bytes on a socket, not a client library's, so malformed input
(NUL, bad percent-encoding, bytes that are not UTF-8, very long lines) reaches the
server as an attacker would send it. Half the requests carry a staff session, so
the admin and the pool's dashboard are driven past their login page, and one in
five filters an admin changelist by its model's fields with hostile values.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.servers

# Bounded for CI: about 20 s on the 2-core machine (3,000 random examples ran
# clean in 2 min); derandomized, so a failure is the same failure on the next
# run, and Hypothesis prints its example.
EXAMPLES = 400
ADMIN = ("fuzz-admin", "fuzz-admin-password-1")

# A named group of a URL regex, e.g. (?P<object_id>.+) or (?P<app_label>auth|core).
_GROUP = re.compile(r"\(\?P<\w+>((?:[^()]|\([^()]*\))*)\)")


def _url_regexes() -> list[str]:
    """The site's URL patterns as regexes of whole paths (prefixes joined)."""
    from django.urls import URLResolver, get_resolver

    def bare(regex: str) -> str:
        regex = regex.removeprefix("^")
        return regex.removesuffix(r"\Z").removesuffix("$")

    def walk(patterns: list[Any], prefix: str) -> Iterator[str]:
        for pattern in patterns:
            regex = prefix + bare(pattern.pattern.regex.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, regex)
            else:
                yield regex

    return list(walk(get_resolver().url_patterns, ""))


# Text that reaches views: any Unicode (NUL, surrogates' neighbours, RTL, digits
# of other scripts), numbers past bigint, and the words views look for.
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.integers(min_value=2**62, max_value=10**30).map(str),
    st.sampled_from(
        ["", "last", "0", "-1", "1", "2", "\u00b2", "\u0663", "\uff12", "1.5", "1e3"]
    ),
    st.text(alphabet="0123456789", min_size=19, max_size=400),
    st.text(max_size=10).map(lambda t: t + "\0"),  # PostgreSQL's text holds no NUL
    st.sampled_from(["(", "[", "1,2", "1,", "a,b,c", "2020-02-30", "true", "x"]),
)


def _group_value(body: str) -> st.SearchStrategy[str]:
    return st.one_of(st.from_regex(f"(?:{body})", fullmatch=True), VALUES)


def _path_from(regex: str) -> st.SearchStrategy[str]:
    """Paths matching `regex`, its groups filled with URL-like and hostile text."""
    parts: list[st.SearchStrategy[str]] = []
    position = 0
    for group in _GROUP.finditer(regex):
        parts.append(st.just(re.sub(r"\\(.)", r"\1", regex[position : group.start()])))
        parts.append(_group_value(group.group(1)))
        position = group.end()
    tail = regex[position:]
    if tail.endswith(".*"):  # the admin's catch-all
        parts += [st.just(tail[:-2]), st.text(max_size=30)]
    else:
        parts.append(st.just(re.sub(r"\\(.)", r"\1", tail)))
    return st.tuples(*parts).map("".join)


def _encoded(text: str, *, safe: str, raw: bool) -> bytes:
    """`text` percent-encoded as a browser would, or, `raw`, as UTF-8 bytes (never
    a space, CR or LF, which would end the request line)."""
    if raw:
        return re.sub(r"[ \r\n]", "+", text).encode("utf-8", "surrogatepass")
    return quote(text, safe=safe).encode("ascii")


BAD_ESCAPES = ["%", "%zz", "%C2", "%FF", "%00", "%0A", "%E2%80%A8", "%ED%A0%80"]
KEYS = st.one_of(
    st.just("page"),  # the list page's
    st.sampled_from(["q", "o", "p", "e", "next", "all", "_popup", "_to_field"]),
    st.text(max_size=20),
)
LOOKUPS = ["", "__exact", "__in", "__range", "__regex", "__year", "__month", "__gt"]


def _changelists() -> list[tuple[str, list[str]]]:
    """Each admin changelist's path, and its model's field names: a changelist
    reads `field__lookup=value` from its query string."""
    from django.contrib import admin
    from django.urls import reverse

    return [
        (
            reverse(
                f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
            ),
            [field.name for field in model._meta.get_fields()],
        )
        for model in admin.site._registry
    ]


@st.composite
def _changelist_target(draw: st.DrawFn) -> bytes:
    path, fields = draw(st.sampled_from(_changelists()))
    lookups = st.tuples(st.sampled_from(fields), st.sampled_from(LOOKUPS)).map("".join)
    values = st.one_of(
        st.text(max_size=8).map(lambda t: t + "\0"),
        st.integers(2**31, 10**25).map(str),
        st.sampled_from(["(", "[", "1", "1,", "2020-02-30"]),
        VALUES,
    )
    pairs = draw(st.lists(st.tuples(lookups, values), min_size=1, max_size=3))
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs)
    return f"{path}?{query}".encode()


@st.composite
def _query(draw: st.DrawFn, *, raw: bool = False) -> bytes:
    pairs = draw(st.lists(st.tuples(KEYS, VALUES), max_size=4))
    items = [
        _encoded(key, safe="", raw=raw) + b"=" + _encoded(value, safe="", raw=raw)
        for key, value in pairs
    ]
    items += draw(st.lists(st.sampled_from(BAD_ESCAPES).map(str.encode), max_size=2))
    if items:  # now and then a very long one
        items[0] += b"9" * draw(st.sampled_from([0, 0, 0, 0, 0, 0, 0, 0, 20, 5000]))
    return b"&".join(draw(st.permutations(items)))


@dataclass(frozen=True)
class Request:
    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def raw(self) -> bytes:
        lines = [self.method + b" " + self.target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in self.headers]
        lines.append(b"Content-Length: " + str(len(self.body)).encode())
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


def _header_text(*, hostile: bool) -> st.SearchStrategy[bytes]:
    """Text as Latin-1 (what HTTP carries); `hostile`, any byte but CR and LF
    (which would start another header line)."""
    if hostile:
        return st.binary(max_size=60).map(
            lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
        )
    return st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF),
        max_size=60,
    ).map(lambda t: t.replace("\x7f", "").encode("latin-1"))


def _headers(
    draw: st.DrawFn, host: bytes, session: bytes, *, hostile: bool
) -> list[tuple[bytes, bytes]]:
    text = _header_text(hostile=hostile)
    # Mostly the site's own Host: another is a 400 before any view runs.
    headers = [
        (
            b"Host",
            draw(
                st.integers(0, 4).flatmap(lambda i: text if i == 4 else st.just(host))
            ),
        )
    ]
    # Half the requests as staff, so the admin and the dashboard run their views.
    if draw(st.booleans()):
        cookie = draw(
            st.one_of(st.just(session), text.map(lambda b: session + b";" + b))
        )
        headers.append((b"Cookie", cookie))
    optional = {
        b"Cookie": text,
        b"X-Forwarded-For": st.one_of(
            st.sampled_from([b"127.0.0.1", b"10.0.0.1, 127.0.0.1", b"::1"]), text
        ),
        b"X-Forwarded-Proto": st.one_of(st.just(b"https"), text),
        b"Accept-Language": st.one_of(
            st.sampled_from([b"de", b"zz-ZZ;q=x", b"*;q=0.5, en"]), text
        ),
        b"Authorization": st.one_of(st.just(b"Bearer "), text),
        b"Referer": text,
        b"Content-Type": st.sampled_from(
            [b"application/x-www-form-urlencoded", b"multipart/form-data", b"x/\xff"]
        ),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            headers.append((name, draw(values)))
    return headers


@st.composite
def _requests(draw: st.DrawFn, host: bytes, session: bytes) -> Request:
    # One request in six is hostile: raw bytes in the target, control bytes in
    # headers. gunicorn refuses those itself (400); the others reach the views.
    hostile = draw(st.integers(0, 5)) == 5
    if draw(st.integers(0, 4)) == 4:  # a staff user filtering a changelist
        headers = _headers(draw, host, session, hostile=hostile)
        headers = [h for h in headers if h[0] != b"Cookie"] + [(b"Cookie", session)]
        return Request(b"GET", draw(_changelist_target()), tuple(headers), b"")
    site: list[st.SearchStrategy[str]] = []
    admin: list[st.SearchStrategy[str]] = []
    for regex in _url_regexes():
        (admin if regex.startswith("admin/") else site).append(_path_from(regex))
    # The site's own URLs as often as the admin's many; unknown paths too.
    paths = [st.one_of(*site), st.one_of(*admin), st.text(max_size=30)]
    path = draw(st.integers(0, 8).flatmap(lambda i: paths[min(i // 4, 2)]))
    target = b"/" + _encoded(path, safe="/", raw=hostile)
    query = draw(st.one_of(st.just(b""), _query(raw=hostile)))
    if query:
        target += b"?" + query
    method = draw(
        st.sampled_from(
            [b"GET", b"GET", b"GET", b"HEAD", b"POST", b"OPTIONS", b"PUT", b"DELETE"]
        )
    )
    body = draw(_query()) if method in (b"POST", b"PUT") else b""
    headers = _headers(draw, host, session, hostile=hostile)
    return Request(method, target, tuple(headers), body)


def _status(web: str, request: Request) -> int:
    """The status code the server answers `request` with."""
    url = urlsplit(web)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(request.raw())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"the server closed the connection on {request.raw()[:200]!r}"
            head += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    assert match, f"not an HTTP answer: {head[:100]!r}"
    return int(match.group(1))


def _cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in headers:
        if name.lower() == "set-cookie":
            jar.load(value)
    return {name: morsel.value for name, morsel in jar.items()}


@pytest.fixture(scope="module")
def staff_cookie(web: str, django_db_blocker: Any) -> Iterator[bytes]:
    """A superuser's session cookie, logged in through the site's login page."""
    import http.client

    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    # Hashed as the site hashes (the tests' settings use a faster hasher).
    password = PBKDF2PasswordHasher().encode(ADMIN[1], "fuzzsalt0123")
    with django_db_blocker.unblock():
        get_user_model().objects.create(
            username=ADMIN[0], password=password, is_staff=True, is_superuser=True
        )
    url = urlsplit(web)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        conn.request("GET", "/admin/login/")
        page = conn.getresponse()
        form = page.read().decode()
        csrf = _cookies(page.getheaders())["csrftoken"]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert token
        body = f"csrfmiddlewaretoken={token.group(1)}&username={ADMIN[0]}"
        conn.request(
            "POST",
            "/admin/login/?next=/admin/",
            body=f"{body}&password={ADMIN[1]}",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={csrf}",
            },
        )
        login = conn.getresponse()
        login.read()
        assert login.status == 302, "the staff login failed"
        session = _cookies(login.getheaders())["sessionid"]
        yield f"csrftoken={csrf}; sessionid={session}".encode()
    finally:
        conn.close()
        with django_db_blocker.unblock():
            get_user_model().objects.filter(username=ADMIN[0]).delete()


def test_no_url_answers_a_server_error(web: str, staff_cookie: bytes) -> None:
    host = urlsplit(web).netloc.encode()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=_requests(host, staff_cookie))
    @example(request=Request(b"GET", b"/?page=%C2%B2", ((b"Host", host),), b""))
    @example(
        request=Request(b"GET", b"/?page=99999999999999999999", ((b"Host", host),), b"")
    )
    @example(  # found by this test: a NUL reached PostgreSQL through a filter
        request=Request(
            b"GET",
            b"/admin/auth/group/?name=%00",
            ((b"Host", host), (b"Cookie", staff_cookie)),
            b"",
        )
    )
    @example(  # found by this test: Django's 400 page read the form and failed
        request=Request(
            b"POST",
            b"/healthz",
            (
                (b"Host", b""),
                (b"Cookie", staff_cookie),
                (b"Content-Type", b"multipart/form-data"),
            ),
            b"",
        )
    )
    def answers_below_500(request: Request) -> None:
        note(f"request: {request.raw()!r}")
        status = _status(web, request)
        assert status < 500, f"{status} for {request.raw()!r}"

    answers_below_500()
