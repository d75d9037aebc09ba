"""Bounded loopback load against the site, as users meet it: client threads on
keep-alive HTTP connections (http.client), reading the list and a detail page and,
for some, writing posts through the admin as a logged-in user; every request is
recorded with its status and its times, so a fault's effect can be read off them.

Shared by the fault tests and bench.faults; it imports neither. Loopback only, and
bounded: `seconds` of load, each request under `request_timeout`.

    with Load(LoadPlan(host=..., port=..., readers=8, seconds=10)) as load:
        time.sleep(3)
        fault_at = time.monotonic()
        ...  # the fault
    summary = load_summary(load.samples, fault_at=fault_at)
"""

from __future__ import annotations

import http.client
import ipaddress
import itertools
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from types import TracebackType
from urllib.parse import urlencode

__all__ = [
    "Load",
    "LoadError",
    "LoadPlan",
    "Sample",
    "Summary",
    "load_summary",
    "recovery_seconds",
]

LOGIN_PATH = "/admin/login/"
WRITE_PATH = "/admin/core/post/add/"
# After a refused connection, a short pause: a client must not spin on a closed port.
ERROR_PAUSE_SECONDS = 0.05
_HIDDEN_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class LoadError(Exception):
    """The load could not start: the site refused the login, or the host is not
    loopback."""


@dataclass(frozen=True)
class LoadPlan:
    """Who loads what, for how long. Writers log in to the admin as `login`."""

    host: str
    port: int
    read_paths: tuple[str, ...] = ("/",)
    readers: int = 8
    writers: int = 0
    seconds: float = 10.0
    login: tuple[str, str] | None = None  # (username, password) for the writers
    # Above gunicorn's 30 s worker timeout would hide a killed worker behind our own
    # timeout; below it, a hung request still ends the run in bounded time.
    request_timeout: float = 15.0


@dataclass(frozen=True)
class Sample:
    """One request: what was asked, what came back (0: no response), and when
    (time.monotonic() at the start and at the end of the response)."""

    kind: str  # "read" or "write"
    method: str
    path: str
    status: int
    start: float
    end: float
    retry_after: str | None = None
    detail: str = ""  # the error, or the start of a 5xx page

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500

    @property
    def latency(self) -> float:
        return self.end - self.start

    def in_flight(self, at: float) -> bool:
        return self.start <= at <= self.end


@dataclass(frozen=True)
class Summary:
    requests: int
    failed: int
    failed_reads: int
    failed_writes: int
    statuses: dict[str, int] = field(default_factory=dict)  # "200", "503", "error"
    p99_ms: float | None = None
    recovery_s: float | None = None  # None: no fault given, or never recovered

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "failed_reads": self.failed_reads,
            "failed_writes": self.failed_writes,
            "statuses": dict(self.statuses),
            "p99_ms": self.p99_ms,
            "recovery_s": self.recovery_s,
        }


def _loopback_require(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise LoadError(
            f"the load's host is {host!r}: load goes to loopback only; give the "
            f"site's address as 127.0.0.1 (or ::1)"
        )


def _page_gist(text: str) -> str:
    """A 5xx page in a few words: its <title>, else its first 120 characters."""
    title = _TITLE.search(text)
    return " ".join((title.group(1) if title else text[:120]).split())


class _Client:
    """One keep-alive HTTP connection, its cookies, and the samples it took."""

    def __init__(self, plan: LoadPlan, kind: str) -> None:
        self.plan, self.kind = plan, kind
        self.conn = http.client.HTTPConnection(
            plan.host, plan.port, timeout=plan.request_timeout
        )
        self.cookies: dict[str, str] = {}
        self.samples: list[Sample] = []
        self.served = 0  # answers on the current connection: is it a kept one?

    def _headers(self, body: bool) -> dict[str, str]:
        headers = {"Host": f"{self.plan.host}:{self.plan.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return headers

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """Send one request and record it; (status, body), (0, "") on no answer."""
        body = urlencode(form) if form is not None else None
        start = time.monotonic()
        try:
            self.conn.request(method, path, body, self._headers(body is not None))
            response = self.conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as error:
            self.conn.close()  # the next request opens a new connection
            kept = f"kept after {self.served} answers" if self.served else "new"
            detail = f"{type(error).__name__} on a {kept} connection"
            self._record(method, path, 0, start, None, detail)
            self.served = 0
            time.sleep(ERROR_PAUSE_SECONDS)
            return 0, ""
        self.served = 0 if response.will_close else self.served + 1
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        detail = _page_gist(text) if response.status >= 500 else ""
        retry_after = response.getheader("Retry-After")
        self._record(method, path, response.status, start, retry_after, detail)
        return response.status, text

    def _record(
        self,
        method: str,
        path: str,
        status: int,
        start: float,
        retry_after: str | None,
        detail: str,
    ) -> None:
        self.samples.append(
            Sample(
                self.kind,
                method,
                path,
                status,
                start,
                time.monotonic(),
                retry_after,
                detail,
            )
        )

    def login(self, username: str, password: str) -> None:
        """Log in to the admin (its CSRF cookie, then the form); not recorded."""
        status, page = self.request("GET", LOGIN_PATH)
        match = _HIDDEN_CSRF.search(page)
        if status != 200 or match is None:
            raise LoadError(
                f"GET {LOGIN_PATH} answered {status} without a login form: is the "
                f"site's admin mounted at /admin/ and the site up?"
            )
        form = {
            "csrfmiddlewaretoken": match.group(1),
            "username": username,
            "password": password,
            "next": "/admin/",
        }
        status, _ = self.request("POST", LOGIN_PATH, form)
        if status != 302 or "sessionid" not in self.cookies:
            raise LoadError(
                f"the admin refused the login of {username!r} (answer {status}): "
                f"give the load the admin user's password (manage.py admin_ensure "
                f"prints it once; changepassword sets a new one)"
            )
        self.samples.clear()  # the login is set-up, not load
        # The load starts on a new connection: this one may idle past gunicorn's
        # keep-alive (2 s) while the other writers log in, and be closed by it.
        self.conn.close()
        self.served = 0

    def write(self, number: int) -> None:
        """Add a post through the admin, as a person would (a 302 when saved)."""
        form = {
            "csrfmiddlewaretoken": self.cookies.get("csrftoken", ""),
            "title": f"Load post {number}",
            "content": "Written under load while a fault happened.",
            "_save": "Save",
        }
        self.request("POST", WRITE_PATH, form)


class Load:
    """The plan's clients, running for `plan.seconds` from the `with` on.

    Writers log in before the clock starts; leaving the block waits for every
    client to finish its last request (each bounded by `request_timeout`)."""

    def __init__(self, plan: LoadPlan) -> None:
        _loopback_require(plan.host)
        if plan.writers and plan.login is None:
            raise LoadError(
                "LoadPlan.writers is set and LoadPlan.login is not: give the "
                "writers the admin's (username, password)"
            )
        self.plan = plan
        self.clients: list[_Client] = []
        self.threads: list[threading.Thread] = []
        self.started = 0.0
        self.stop = threading.Event()
        self._numbers = itertools.count(1)

    def __enter__(self) -> Load:
        plan = self.plan
        readers = [_Client(plan, "read") for _ in range(plan.readers)]
        writers = [_Client(plan, "write") for _ in range(plan.writers)]
        for writer in writers:
            writer.login(*(plan.login or ("", "")))
        self.clients = readers + writers
        self.started = time.monotonic()
        deadline = self.started + plan.seconds
        for n, client in enumerate(self.clients):
            target = self._read_loop if client.kind == "read" else self._write_loop
            thread = threading.Thread(
                target=target, args=(client, deadline, n), daemon=True
            )
            thread.start()
            self.threads.append(thread)
        return self

    def _read_loop(self, client: _Client, deadline: float, n: int) -> None:
        paths = self.plan.read_paths
        # Clients start on different paths, so every path is in the mix at once.
        for i in itertools.count(n):
            if self.stop.is_set() or time.monotonic() >= deadline:
                break
            client.request("GET", paths[i % len(paths)])
        client.conn.close()

    def _write_loop(self, client: _Client, deadline: float, n: int) -> None:
        while not self.stop.is_set() and time.monotonic() < deadline:
            client.write(next(self._numbers))
        client.conn.close()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.stop.set()  # the block failed: end the load early
        bound = self.plan.seconds + self.plan.request_timeout + 5
        for thread in self.threads:
            thread.join(max(0.0, self.started + bound - time.monotonic()))

    @property
    def samples(self) -> list[Sample]:
        """Every request of every client, in the order they started."""
        return sorted(
            (s for c in self.clients for s in c.samples), key=lambda s: s.start
        )


def _p99(samples: Sequence[Sample]) -> float | None:
    if not samples:
        return None
    latencies = sorted(s.latency for s in samples)
    rank = max(1, math.ceil(0.99 * len(latencies)))  # nearest rank
    return round(latencies[rank - 1] * 1000, 1)


def recovery_seconds(samples: Sequence[Sample], *, since: float) -> float | None:
    """Seconds from `since` to the end of the first success sent after `since`
    and after the last failure seen from then on; None if none came."""
    failures = [s.end for s in samples if s.failed and s.end >= since]
    after = max([since, *failures])
    ends = [s.end for s in samples if not s.failed and s.start >= after]
    return round(min(ends) - since, 3) if ends else None


def load_summary(samples: Sequence[Sample], *, fault_at: float | None) -> Summary:
    """The counts, the p99 latency, and (given the fault's instant) the recovery."""
    statuses: Counter[str] = Counter(
        str(s.status) if s.status else "error" for s in samples
    )
    failed = [s for s in samples if s.failed]
    return Summary(
        requests=len(samples),
        failed=len(failed),
        failed_reads=sum(1 for s in failed if s.kind == "read"),
        failed_writes=sum(1 for s in failed if s.kind == "write"),
        statuses=dict(sorted(statuses.items())),
        p99_ms=_p99(samples),
        recovery_s=None
        if fault_at is None
        else recovery_seconds(samples, since=fault_at),
    )
