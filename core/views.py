from typing import Any

from django.http import Http404
from django.views.generic import DetailView, TemplateView

from .selectors import post_detail, post_page


class PostListView(TemplateView):
    template_name = "core/post_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        raw = self.request.GET.get("page", "1")
        if not raw.isdigit() or int(raw) < 1:
            raise Http404("No such page.")
        page = post_page(number=int(raw))
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
