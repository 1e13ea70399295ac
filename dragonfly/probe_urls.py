"""The probes' URLs: every process answers them; a process of the `api` role answers only them
(and /v1, which never reaches Django: dragonfly/asgi.py)."""

from django.urls import path

from dragonfly import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]

# Our own error pages (dragonfly/error_views.py); the CSRF failure page is CSRF_FAILURE_VIEW.
handler404 = "dragonfly.error_views.page_not_found"
handler500 = "dragonfly.error_views.server_error"
