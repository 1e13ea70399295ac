"""Management API for buyers (DRF): account summary, keys, routing profiles.

Two ways in: the dashboard's session (writes need the CSRF token) or a personal API token
(`Authorization: Bearer df-pat-…`, no CSRF), which may read with the `read` scope and write only
where a view names its scope in `required_scope` (accounts/tokens_drf.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services, validation
from accounts.api_schema import ApiSchemaGenerator
from accounts.models import AccessKey, PrivacyMode, RoutingProfile, RoutingStrategy
from billing.money import MAX_PRICE_PER_MILLION_NUSD
from bounded_numbers import fields as bounded_fields


def _raise_api(exc: DjangoValidationError, renames: dict[str, str] | None = None) -> None:
    renames = renames or {}
    if hasattr(exc, "error_dict"):
        detail = {
            renames.get(field, field if field != "__all__" else "non_field_errors"): [
                message for error in errors for message in error.messages
            ]
            for field, errors in exc.error_dict.items()
        }
        raise ApiValidationError(detail) from None
    raise ApiValidationError({"non_field_errors": exc.messages}) from None


def _django_to_drf(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


class KeyOutput(serializers.ModelSerializer):
    profile_id = serializers.IntegerField()

    class Meta:
        model = AccessKey
        fields = [
            "id",
            "name",
            "prefix",
            "profile_id",
            "requests_per_minute",
            "tokens_per_minute",
            "spend_limit_nusd",
            "last_used_at",
            "revoked_at",
            "created_at",
        ]


class ProfileOutput(serializers.ModelSerializer):
    class Meta:
        model = RoutingProfile
        fields = ["id", "name", *services.PROFILE_FIELDS, "created_at"]


class AccountSummaryApi(APIView):
    @extend_schema_serializer(component_name="AccountSummary")
    class OutputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        email_verified = serializers.BooleanField()
        buyer_terms_accepted = serializers.BooleanField()
        plan = serializers.DictField()
        next_plan = serializers.DictField(allow_null=True)
        balance_nusd = serializers.IntegerField()
        held_nusd = serializers.IntegerField()
        available_nusd = serializers.IntegerField()
        spent_this_month_nusd = serializers.IntegerField()
        lifetime_topups_nusd = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        from billing import selectors as billing_selectors
        from market import selectors as market_selectors

        user = request.user
        status_ = selectors.plan_status(user=user)
        wallet = billing_selectors.wallet_summary(user=user)
        data = {
            "email": user.email,
            "email_verified": selectors.email_is_verified(user=user),
            "buyer_terms_accepted": bool(
                market_selectors.terms_accepted_current(user=user, audience="buyer")
            ),
            "plan": selectors.plan_record(status_.plan),
            "next_plan": selectors.next_plan_record(status_),
            **{field: wallet[field] for field in self.OutputSerializer().fields if field in wallet},
        }
        return Response(self.OutputSerializer(data).data)


class KeyListApi(APIView):
    @extend_schema(responses=KeyOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(KeyOutput(selectors.access_key_list(user=request.user), many=True).data)


class KeyCreateApi(APIView):
    required_scope = "keys:write"

    @extend_schema_serializer(component_name="KeyCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=80)
        profile_id = bounded_fields.ApiIntegerField(required=False)
        requests_per_minute = bounded_fields.ApiIntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            max_value=validation.MAX_THROTTLE_PER_MINUTE,
        )
        tokens_per_minute = bounded_fields.ApiIntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            max_value=validation.MAX_THROTTLE_PER_MINUTE,
        )
        spend_limit_usd = serializers.CharField(
            required=False, allow_null=True, allow_blank=True, help_text='e.g. "5.00"'
        )

        def validate_spend_limit_usd(self, value):
            nusd = _django_to_drf(validation.usd_to_nusd_field, value, what="Spend limit")
            if nusd == 0:
                raise serializers.ValidationError("A spend limit must be above zero.")
            return nusd

    @extend_schema_serializer(component_name="KeyCreated")
    class OutputSerializer(KeyOutput):
        secret = serializers.CharField(help_text="Shown once; store it now.")

        class Meta(KeyOutput.Meta):
            fields = [*KeyOutput.Meta.fields, "secret"]

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        examples=[
            OpenApiExample(
                "A key on the default profile, with a spend limit",
                value={"name": "nightly batch", "spend_limit_usd": "5.00"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        user = request.user
        if not selectors.email_is_verified(user=user):
            raise PermissionDenied("Verify your email address to create access keys.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        profile = None
        if data.get("profile_id") is not None:
            profile = selectors.routing_profile_get(user=user, profile_id=data["profile_id"])
            if profile is None:
                raise ApiValidationError({"profile_id": ["Choose one of your routing profiles."]})
        try:
            key, secret = services.access_key_create(
                user=user,
                name=data["name"],
                profile=profile,
                requests_per_minute=data.get("requests_per_minute"),
                tokens_per_minute=data.get("tokens_per_minute"),
                spend_limit_nusd=data.get("spend_limit_usd"),
            )
        except DjangoValidationError as exc:
            _raise_api(exc, {"spend_limit_nusd": "spend_limit_usd", "profile": "profile_id"})
        key.secret = secret  # type: ignore[attr-defined]
        response = Response(self.OutputSerializer(key).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


def _own_key(request: Request, key_id: int) -> AccessKey:
    key = selectors.access_key_get(user=request.user, key_id=key_id)
    if key is None:
        raise Http404
    return key


class KeyDetailApi(APIView):
    @extend_schema(responses=KeyOutput)
    def get(self, request: Request, key_id: int) -> Response:
        return Response(KeyOutput(_own_key(request, key_id)).data)


class KeyRevokeApi(APIView):
    required_scope = "keys:write"

    @extend_schema(request=None, responses=KeyOutput)
    def post(self, request: Request, key_id: int) -> Response:
        key = services.access_key_revoke(key=_own_key(request, key_id))
        return Response(KeyOutput(key).data)


class ProfileInput(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    strategy = serializers.ChoiceField(choices=RoutingStrategy.choices, required=False)
    max_input_price_usd = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="USD per million tokens"
    )
    max_output_price_usd = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="USD per million tokens"
    )
    soft_max_ttft_ms = bounded_fields.ApiIntegerField(
        required=False, allow_null=True, min_value=1, max_value=validation.MAX_TTFT_MS
    )
    hard_max_ttft_ms = bounded_fields.ApiIntegerField(
        required=False, allow_null=True, min_value=1, max_value=validation.MAX_TTFT_MS
    )
    soft_min_tps = bounded_fields.ApiIntegerField(
        required=False, allow_null=True, min_value=1, max_value=validation.MAX_TPS
    )
    hard_min_tps = bounded_fields.ApiIntegerField(
        required=False, allow_null=True, min_value=1, max_value=validation.MAX_TPS
    )
    privacy_mode = serializers.ChoiceField(
        choices=PrivacyMode.choices, required=False, allow_blank=True
    )
    provider_only = serializers.ListField(child=serializers.CharField(), required=False)
    provider_ignore = serializers.ListField(child=serializers.CharField(), required=False)
    provider_order = serializers.ListField(child=serializers.CharField(), required=False)
    aliases_enabled = serializers.BooleanField(required=False)
    model_aliases = serializers.DictField(child=serializers.CharField(), required=False)
    default_model = serializers.CharField(required=False, allow_blank=True, max_length=100)
    strict_models = serializers.BooleanField(required=False)

    def validate_max_input_price_usd(self, value):
        return _django_to_drf(
            validation.usd_to_nusd_field,
            value,
            what="Max input price",
            max_nusd=MAX_PRICE_PER_MILLION_NUSD,
        )

    def validate_max_output_price_usd(self, value):
        return _django_to_drf(
            validation.usd_to_nusd_field,
            value,
            what="Max output price",
            max_nusd=MAX_PRICE_PER_MILLION_NUSD,
        )

    def validate_provider_only(self, value):
        return _django_to_drf(validation.provider_slugs_parse, value)

    def validate_provider_ignore(self, value):
        return _django_to_drf(validation.provider_slugs_parse, value)

    def validate_provider_order(self, value):
        return _django_to_drf(validation.provider_slugs_parse, value)

    def validate_model_aliases(self, value):
        return _django_to_drf(validation.aliases_parse, value)

    def validate_default_model(self, value):
        return _django_to_drf(validation.model_id_check, value)

    def service_fields(self) -> dict[str, Any]:
        renames = {
            "max_input_price_usd": "max_input_price_nusd",
            "max_output_price_usd": "max_output_price_nusd",
        }
        return {renames.get(k, k): v for k, v in self.validated_data.items()}


_PROFILE_RENAMES = {
    "max_input_price_nusd": "max_input_price_usd",
    "max_output_price_nusd": "max_output_price_usd",
}


class ProfileListApi(APIView):
    @extend_schema(responses=ProfileOutput(many=True))
    def get(self, request: Request) -> Response:
        profiles = selectors.routing_profile_list(user=request.user)
        return Response(ProfileOutput(profiles, many=True).data)


class ProfileCreateApi(APIView):
    required_scope = "profiles:write"

    InputSerializer = ProfileInput
    OutputSerializer = ProfileOutput

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            profile = services.routing_profile_create(
                user=request.user, **serializer.service_fields()
            )
        except DjangoValidationError as exc:
            _raise_api(exc, _PROFILE_RENAMES)
        return Response(self.OutputSerializer(profile).data, status=status.HTTP_201_CREATED)


def _own_profile(request: Request, profile_id: int) -> RoutingProfile:
    profile = selectors.routing_profile_get(user=request.user, profile_id=profile_id)
    if profile is None:
        raise Http404
    return profile


class ProfileDetailApi(APIView):
    @extend_schema(responses=ProfileOutput)
    def get(self, request: Request, profile_id: int) -> Response:
        return Response(ProfileOutput(_own_profile(request, profile_id)).data)


class ProfileUpdateApi(APIView):
    """PATCH semantics: fields left out keep their values."""

    required_scope = "profiles:write"

    InputSerializer = ProfileInput
    OutputSerializer = ProfileOutput

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request: Request, profile_id: int) -> Response:
        profile = _own_profile(request, profile_id)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = {field: getattr(profile, field) for field in services.PROFILE_FIELDS}
        fields.update(serializer.service_fields())
        fields.setdefault("name", profile.name)
        try:
            services.routing_profile_update(profile=profile, **fields)
        except DjangoValidationError as exc:
            _raise_api(exc, _PROFILE_RENAMES)
        profile.refresh_from_db()
        return Response(self.OutputSerializer(profile).data)


class ProfileDeleteApi(APIView):
    required_scope = "profiles:write"

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, profile_id: int) -> Response:
        profile = _own_profile(request, profile_id)
        try:
            services.routing_profile_delete(profile=profile)
        except DjangoValidationError as exc:
            _raise_api(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SchemaApi(SpectacularAPIView):
    """The OpenAPI document of the management API (the /v1 data plane is documented separately)."""

    generator_class = ApiSchemaGenerator


@login_required
def docs(request: HttpRequest) -> HttpResponse:
    """The schema rendered as a plain page: no Swagger UI, nothing from a CDN."""
    generator = ApiSchemaGenerator()
    schema = generator.get_schema(request=None, public=True)
    operations: list[dict[str, Any]] = []
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for path, methods in paths.items():
        for method, operation in methods.items():
            content: dict[str, Any] = operation.get("requestBody", {}).get("content", {})
            first: dict[str, Any] = next(iter(content.values()), {})
            request_ref = first.get("schema", {}).get("$ref", "")
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("description") or operation.get("summary", ""),
                    "request": request_ref.rsplit("/", 1)[-1],
                    "responses": sorted(operation.get("responses", {}).keys()),
                }
            )
    components = schema.get("components", {}).get("schemas", {})
    context = {
        "schema": schema,
        "operations": operations,
        "components": components,
        "nav": "api_docs",
    }
    return render(request, "accounts/api_docs.html", context)
