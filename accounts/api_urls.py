"""Management API URLs under /api/ (session with CSRF, or a personal token), the OpenAPI schema and
its docs page."""

from django.urls import path, re_path

from accounts import api
from accounts.api_schema import NotFoundApi
from billing import api as billing_api

urlpatterns = [
    path("account/", api.AccountSummaryApi.as_view(), name="api_account"),
    path("keys/", api.KeyListApi.as_view(), name="api_key_list"),
    path("keys/create/", api.KeyCreateApi.as_view(), name="api_key_create"),
    path("keys/<int:key_id>/", api.KeyDetailApi.as_view(), name="api_key_detail"),
    path("keys/<int:key_id>/revoke/", api.KeyRevokeApi.as_view(), name="api_key_revoke"),
    path("profiles/", api.ProfileListApi.as_view(), name="api_profile_list"),
    path("profiles/create/", api.ProfileCreateApi.as_view(), name="api_profile_create"),
    path("profiles/<int:profile_id>/", api.ProfileDetailApi.as_view(), name="api_profile_detail"),
    path(
        "profiles/<int:profile_id>/update/",
        api.ProfileUpdateApi.as_view(),
        name="api_profile_update",
    ),
    path(
        "profiles/<int:profile_id>/delete/",
        api.ProfileDeleteApi.as_view(),
        name="api_profile_delete",
    ),
    path("usage/", billing_api.UsageListApi.as_view(), name="api_usage_list"),
    path("usage/export.csv", billing_api.UsageExportApi.as_view(), name="api_usage_export"),
    path(
        "usage/<str:request_id>/dispute/",
        billing_api.DisputeCreateApi.as_view(),
        name="api_dispute_create",
    ),
    path("disputes/", billing_api.DisputeListApi.as_view(), name="api_dispute_list"),
    path("schema/", api.SchemaApi.as_view(), name="api_schema"),
    path("docs/", api.docs, name="api_docs"),
    # Last: any other /api/ path is DRF's JSON 404, not Django's HTML page (accounts/api_schema.py);
    # only paths ending in "/", so APPEND_SLASH still redirects "/api/keys" to "/api/keys/".
    re_path(r"^.*/$", NotFoundApi.as_view(), name="api_not_found"),
]
