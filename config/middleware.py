"""The site's middleware: django_pgbouncer's fault handling, fitted to this site."""

from django_pgbouncer.middleware import BackendLossMiddleware


class SiteBackendLossMiddleware(BackendLossMiddleware):
    """POST too: the site's only POST views are the admin's, which touch nothing
    outside the database before their first write. A POST whose connection broke
    before it wrote (a PgBouncer restart drops the query a client sent as the old
    process exits) then runs again instead of answering 503."""

    retry_methods = frozenset({"GET", "HEAD", "POST"})
