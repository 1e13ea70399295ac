"""The public market pages, mounted at /market/."""

from django.urls import path

from market import views

urlpatterns = [
    path("", views.market_list_view, name="market_list"),
    path("<path:model_id>/", views.market_model_view, name="market_model"),
]
