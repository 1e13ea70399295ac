"""Control-plane URLs. /v1/ never reaches Django: dragonfly/asgi.py sends it to the gateway."""

from django.contrib import admin
from django.urls import include, path

from dragonfly import probe_urls, views
from dragonfly.probe_urls import handler404, handler500  # noqa: F401  (Django reads them here)

urlpatterns = [
    path("", views.home, name="home"),
    *probe_urls.urlpatterns,
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("seller/", include("market.seller_urls")),
    path("market/", include("market.urls")),
    path("billing/", include("billing.urls")),
    path("dashboard/", include("accounts.urls")),
    path("api/", include("accounts.api_urls")),
]
