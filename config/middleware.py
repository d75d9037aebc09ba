"""The site's middleware: django_pgbouncer's fault handling, fitted to this site."""

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpRequest, HttpResponseBadRequest, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase

from django_pgbouncer.middleware import BackendLossMiddleware

__all__ = ["SiteBackendLossMiddleware", "form_unreadable"]


def form_unreadable(request: HttpRequest) -> HttpResponseBadRequest | None:
    """A 400 for a POST whose form cannot be read (a multipart body without a
    boundary, too many fields, a body cut short); None for any other request.

    Read here, before any view: Django's own 400 page is CSRF-protected, and when
    another 400 (a Host not allowed) comes first, its CSRF check is the first to
    read the form, and the parser's error there is a 500. Once read (or failed),
    the form is cached on the request, so every later reader gets it or nothing.
    """
    if request.method != "POST":
        return None
    try:
        request.POST  # noqa: B018 (read for its side effect: parse and cache)
    except (MultiPartParserError, SuspiciousOperation, BadRequest, UnreadablePostError):
        return HttpResponseBadRequest("The request's form could not be read.")
    return None


class SiteBackendLossMiddleware(BackendLossMiddleware):
    """POST too: the site's only POST views are the admin's, which touch nothing
    outside the database before their first write. A POST whose connection broke
    before it wrote (a PgBouncer restart drops the query a client sent as the old
    process exits) then runs again instead of answering 503.

    The form of a POST is read first (form_unreadable): a retry reads the same
    one, and no error page is the first to read it. The site's views set no
    upload handlers of their own, which reading first would forbid."""

    retry_methods = frozenset({"GET", "HEAD", "POST"})

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return form_unreadable(request) or super().__call__(request)
