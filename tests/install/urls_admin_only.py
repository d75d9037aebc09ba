"""A project that installs django_pgbouncer but routes none of its URLs: the admin
alone, as `django-admin startproject` writes it."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
