import re
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from .models import Post

# A year, month or day of the date drill-down: Django's admin turns a bigger number
# into a datetime and fails with OverflowError, a 500.
_DATE_PART = re.compile(r"[0-9]{1,4}", re.ASCII)


class FilterLookupsOnly(admin.ModelAdmin):
    """A changelist filtered only by the lookups its own filters make.

    Django's admin lets any lookup on a model's own fields through the query
    string (`?title__regex=(`, `?id__range=1`, `?created_at__year=<huge>`), and
    PostgreSQL's or Python's error on a malformed value is a 500. Any other lookup
    is refused (DisallowedModelAdminLookup: a 400)."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        field = lookup.split("__", 1)[0]
        if field == self.date_hierarchy:
            return bool(_DATE_PART.fullmatch(value))
        if field not in self._filter_fields(request):
            return False
        return bool(super().lookup_allowed(lookup, value, request))

    def _filter_fields(self, request: HttpRequest) -> set[str]:
        fields: set[str] = set()
        for spec in self.get_list_filter(request):
            name: Any = spec[0] if isinstance(spec, (tuple, list)) else spec
            if isinstance(name, str):
                fields.add(name.split("__", 1)[0])
        return fields


@admin.register(Post)
class PostAdmin(FilterLookupsOnly):
    list_display = ["title", "created_at", "updated_at"]
    search_fields = ["title", "content"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "updated_at"]


# django.contrib.auth's own admins, with the same rule for their changelists.
admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class SiteUserAdmin(FilterLookupsOnly, UserAdmin):
    pass


@admin.register(Group)
class SiteGroupAdmin(FilterLookupsOnly, GroupAdmin):
    pass
