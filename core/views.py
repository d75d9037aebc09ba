from typing import Any

from django.http import Http404
from django.views.generic import DetailView, TemplateView

from .selectors import post_detail, post_page, post_page_last

LAST = "last"


def page_number_parse(raw: str) -> int | None:
    """The page number in `?page=raw` as Django's ListView reads it: empty is the
    first page, anything `int()` reads is a number (so '٢' is 2; '²' is not),
    `last` is the last page (None here). A number below 1 or anything else: 404."""
    if not raw:
        return 1
    if raw == LAST:
        return None
    try:
        # ValueError too for more digits than int() reads (4300 by default).
        number = int(raw)
    except ValueError:
        raise Http404("No such page.") from None
    if number < 1:
        raise Http404("No such page.")
    return number


class PostListView(TemplateView):
    template_name = "core/post_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        number = page_number_parse(self.request.GET.get("page", ""))
        page = post_page_last() if number is None else post_page(number=number)
        if page.number > 1 and not page.posts:
            raise Http404("No such page.")
        return {
            **super().get_context_data(**kwargs),
            "page": page,
            "object_list": page.posts,
        }


class PostDetailView(DetailView):
    template_name = "core/post_detail.html"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return post_detail()
