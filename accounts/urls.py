"""Buyer dashboard URLs, mounted at /dashboard/ (names are global: LOGIN_REDIRECT_URL = "dashboard")."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.overview, name="dashboard"),
    path("quickstart/", views.quickstart, name="dashboard_quickstart"),
    path("playground/", views.playground, name="dashboard_playground"),
    path("keys/", views.keys, name="dashboard_keys"),
    path("keys/<int:key_id>/", views.key_edit, name="dashboard_key_edit"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="dashboard_key_revoke"),
    path("tokens/", views.tokens, name="dashboard_tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="dashboard_token_revoke"),
    path("profiles/", views.profiles, name="dashboard_profiles"),
    path("profiles/new/", views.profile_create, name="dashboard_profile_create"),
    path("profiles/<int:profile_id>/", views.profile_edit, name="dashboard_profile_edit"),
    path(
        "profiles/<int:profile_id>/delete/", views.profile_delete, name="dashboard_profile_delete"
    ),
    path("terms/", views.terms, name="dashboard_terms"),
    path("promises/", views.promises, name="dashboard_promises"),
]
