from django.views.generic import DetailView, ListView

from .selectors import post_detail, post_list


class PostListView(ListView):
    template_name = "core/post_list.html"
    paginate_by = 20

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return post_list()


class PostDetailView(DetailView):
    template_name = "core/post_detail.html"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return post_detail()
