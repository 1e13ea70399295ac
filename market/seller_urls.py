"""Seller portal URLs, mounted at /seller/."""

from django.urls import path

from market import sale_views, views

urlpatterns = [
    path("", views.seller_portal, name="seller_portal"),
    path("terms/", views.seller_terms, name="seller_terms"),
    path("sales/", sale_views.sale_lookup_view, name="seller_sale_lookup"),
    path("sales/<str:request_id>/", sale_views.sale_detail_view, name="seller_sale_detail"),
    path("listings/new/", views.listing_create_view, name="seller_listing_create"),
    path("listings/<int:listing_id>/", views.listing_detail_view, name="seller_listing_detail"),
    path("listings/<int:listing_id>/edit/", views.listing_edit_view, name="seller_listing_edit"),
    path("listings/<int:listing_id>/rekey/", views.listing_rekey_view, name="seller_listing_rekey"),
    path("listings/<int:listing_id>/pause/", views.listing_pause_view, name="seller_listing_pause"),
    path(
        "listings/<int:listing_id>/resume/", views.listing_resume_view, name="seller_listing_resume"
    ),
    path(
        "listings/<int:listing_id>/delete/", views.listing_delete_view, name="seller_listing_delete"
    ),
]
