"""The project's URLs plus one view that fails, to see the 500 page."""

from django.urls import path

from dragonfly.urls import handler404, handler500
from dragonfly.urls import urlpatterns as project_urlpatterns


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [*project_urlpatterns, path("boom/", boom)]
__all__ = ["handler404", "handler500", "urlpatterns"]
