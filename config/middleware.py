"""The site's middleware: django_pgbouncer's fault handling, fitted to this site."""

from collections.abc import Callable

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import (
    HttpRequest,
    HttpResponseBadRequest,
    QueryDict,
    UnreadablePostError,
)
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase

from django_pgbouncer.middleware import BackendLossMiddleware

__all__ = ["ParametersMiddleware", "SiteBackendLossMiddleware", "parameters_refused"]


def _holds_nul(params: QueryDict) -> bool:
    return any(
        "\0" in key or any("\0" in value for value in values)
        for key, values in params.lists()
    )


def parameters_refused(request: HttpRequest) -> HttpResponseBadRequest | None:
    """A 400 for a request whose parameters no view can use; else None.

    - A POST whose form cannot be read (a multipart body without a boundary, too
      many fields, a body cut short). Read here, before any view: Django's own
      400 page is CSRF-protected, and when another 400 (a Host not allowed) comes
      first, its CSRF check is the first to read the form, and the parser's error
      there is a 500. Once read (or failed), the form is cached on the request.
    - A NUL character in a query or form parameter: PostgreSQL's text cannot hold
      one, and a lookup with it is an error (a 500) wherever a value reaches SQL
      unvalidated, the admin's changelist filters among them.
    """
    if request.method == "POST":
        try:
            form = request.POST
        except (
            MultiPartParserError,
            SuspiciousOperation,
            BadRequest,
            UnreadablePostError,
        ):
            return HttpResponseBadRequest("The request's form could not be read.")
        if _holds_nul(form):
            return HttpResponseBadRequest("A form field holds a NUL character.")
    if _holds_nul(request.GET):
        return HttpResponseBadRequest("A query parameter holds a NUL character.")
    return None


class ParametersMiddleware:
    """parameters_refused() before anything else reads the request's form."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return parameters_refused(request) or self.get_response(request)


class SiteBackendLossMiddleware(BackendLossMiddleware):
    """POST too: the site's only POST views are the admin's, which touch nothing
    outside the database before their first write. A POST whose connection broke
    before it wrote (a PgBouncer restart drops the query a client sent as the old
    process exits) then runs again instead of answering 503.

    ParametersMiddleware comes first, so a retry reads the form already read.
    The site's views set no upload handlers of their own, which reading first
    would forbid."""

    retry_methods = frozenset({"GET", "HEAD", "POST"})
