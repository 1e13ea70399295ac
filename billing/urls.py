"""Billing pages: credits, usage, disputes, earnings, Stripe top-ups and the Stripe webhook."""

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.credits, name="credits"),
    path("topup/", views.topup_start, name="topup_start"),
    path("topup/success/", views.topup_success, name="topup_success"),
    path("topup/cancel/", views.topup_cancel, name="topup_cancel"),
    path("usage/", views.usage, name="usage"),
    path("usage/<str:request_id>/", views.usage_detail, name="usage_detail"),
    path("usage/<str:request_id>/dispute/", views.dispute_create, name="dispute_create"),
    path("disputes/", views.disputes, name="disputes"),
    path("earnings/", views.earnings, name="earnings"),
    path("earnings/payout/", views.payout_request, name="payout_request"),
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
