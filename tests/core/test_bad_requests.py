"""Requests Django answers with a 400 stay a 400 when they stack up: a POST whose
form cannot be read, sent with a Host the site does not serve. Driven through
Django's WSGI handler with the environ gunicorn builds (the test client skips the
CSRF check whose form read turned the 400 into a 500)."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler

# The handler closes database connections at the end of each request.
pytestmark = [pytest.mark.servers, pytest.mark.django_db]

CSRF_COOKIE = "csrftoken=" + "a" * 32


def wsgi_status(*, host: str, content_type: str, body: bytes = b"") -> int:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/healthz",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": host,
        "HTTP_COOKIE": CSRF_COOKIE,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    statuses: list[str] = []

    def start_response(status: str, headers: object, *_: object) -> Any:
        statuses.append(status)
        return lambda data: None

    response = WSGIHandler()(environ, start_response)
    response.close()
    return int(statuses[0].split()[0])


MANY_FIELDS = b"&".join(b"f%d=1" % i for i in range(1100))


@pytest.mark.parametrize("host", ["", "evil.example", "127.0.0.1"])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b""),
        ("multipart/form-data; boundary=\u00e9", b""),
        ("application/x-www-form-urlencoded", MANY_FIELDS),
    ],
    ids=["multipart-without-boundary", "multipart-bad-boundary", "too-many-fields"],
)
def test_an_unreadable_form_is_400_whatever_the_host(host, content_type, body):
    assert wsgi_status(host=host, content_type=content_type, body=body) == 400


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"title=a%00b"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="t"\r\n\r\na\0b\r\n--x--\r\n',
        ),
    ],
    ids=["urlencoded", "multipart"],
)
def test_a_nul_in_a_form_is_400(content_type, body):
    assert wsgi_status(host="127.0.0.1", content_type=content_type, body=body) == 400


def test_a_readable_form_without_a_csrf_token_is_403():
    status = wsgi_status(
        host="127.0.0.1", content_type="application/x-www-form-urlencoded", body=b"a=1"
    )
    assert status == 403
