"""Control-plane URLs. /v1/ never reaches Django: dragonfly/asgi.py sends it to the gateway."""

from django.contrib import admin
from django.urls import include, path

from dragonfly import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("seller/", include("market.seller_urls")),
    path("market/", include("market.urls")),
    path("billing/", include("billing.urls")),
    path("dashboard/", include("accounts.urls")),
    path("api/", include("accounts.api_urls")),
]

# Our own error pages (dragonfly/error_views.py); the CSRF failure page is CSRF_FAILURE_VIEW.
handler404 = "dragonfly.error_views.page_not_found"
handler500 = "dragonfly.error_views.server_error"
