from django.contrib import admin

from .models import Post


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["title", "created_at", "updated_at"]
    search_fields = ["title", "content"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "updated_at"]
