"""Management API for a buyer's usage (DRF): `GET /api/usage/`, the settled requests as paginated
JSON, newest first, and `GET /api/usage/export.csv`, the same rows as the streaming CSV of the
usage page. Both take the usage page's filters (billing.usage_filter); a bad one is a 400 in
DRF's shape (`{"key": ["..."]}`), never someone else's rows. And disputes:
`POST /api/usage/<request_id>/dispute/` opens one, `GET /api/disputes/` lists them."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import dispute_selectors, selectors, services
from billing.csv_export import USAGE, csv_response
from billing.errors import BillingError, http_status
from billing.models import DISPUTE_DETAIL_MAX, DisputeReason, DisputeStatus, UsageRecord
from billing.money import NUSD_PER_USD
from billing.usage_filter import UsageFilter, UsageFilterForm
from bounded_numbers import parse as bounded

FILTER_PARAMETERS = [
    OpenApiParameter(
        "key",
        OpenApiTypes.INT,
        description="Only this access key's requests (one of your keys, revoked ones included).",
    ),
    OpenApiParameter("model", OpenApiTypes.STR, description="Only this catalogue model id."),
    OpenApiParameter(
        "start", OpenApiTypes.DATE, description="First UTC day included (YYYY-MM-DD)."
    ),
    OpenApiParameter("end", OpenApiTypes.DATE, description="Last UTC day included (YYYY-MM-DD)."),
]

_ERRORS = OpenApiResponse(
    response=inline_serializer(
        "UsageQueryError",
        fields={
            name: serializers.ListField(child=serializers.CharField(), required=False)
            for name in ("key", "model", "start", "end", "page", "page_size", "non_field_errors")
        },
    ),
    description="A query parameter is invalid; each names what is wrong with it.",
)


def usage_filter_parse(request: Request) -> UsageFilter:
    """The request's filters, or a 400 that names each bad parameter."""
    form = UsageFilterForm(request.query_params, user=request.user)
    if not form.is_valid():
        raise ValidationError(form.errors_by_param())
    return form.usage_filter()


def _bounded_query_int(request: Request, name: str, *, default: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return bounded.int_text(text, what=name, low=1, high=high)
    except bounded.NumberError:
        raise ValidationError(
            {name: [f"The {name.replace('_', ' ')} must be a whole number from 1 to {high:,}."]}
        ) from None


class UsagePagination(PageNumberPagination):
    """`?page=` and `?page_size=` (at most 200), parsed with bounds: garbage is a 400 that says
    so, not a silently different page. One query for the count, one for the page."""

    page_size = 50
    page_size_query_param = "page_size"  # parsed below; named here for the schema
    max_page_size = 200
    max_page = 10**9

    def get_page_size(self, request: Request) -> int:
        return _bounded_query_int(
            request, "page_size", default=self.page_size, high=self.max_page_size
        )

    def get_page_number(self, request: Request, paginator: Paginator) -> int:  # type: ignore[override]
        return _bounded_query_int(request, "page", default=1, high=self.max_page)


@extend_schema_field(OpenApiTypes.DOUBLE)
class UsdField(serializers.Field):
    """Nano-USD shown as a JSON number of dollars, for display (`*_nusd` is the exact figure)."""

    def to_representation(self, value: int) -> float:
        return value / NUSD_PER_USD


@extend_schema_serializer(component_name="UsageRow")
class UsageRowOutput(serializers.Serializer):
    request_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    key_id = serializers.IntegerField(
        source="access_key_id", allow_null=True, help_text="null: made without an access key."
    )
    key_name = serializers.CharField(
        allow_null=True, help_text="null: no key, or the key no longer exists."
    )
    key_prefix = serializers.CharField(allow_null=True)
    key_revoked = serializers.SerializerMethodField()
    model = serializers.CharField(source="model_id")
    provider = serializers.CharField(source="provider_slug", allow_null=True)
    listing_id = serializers.IntegerField(allow_null=True)
    upstream_model = serializers.CharField()
    price_unit = serializers.CharField()
    input_units = serializers.IntegerField()
    output_units = serializers.IntegerField()
    cost_nusd = serializers.IntegerField(
        source="buyer_debit_nusd", help_text="What you paid, exact, in nano-USD (1e-9 USD)."
    )
    cost_usd = UsdField(source="buyer_debit_nusd", help_text="The same in USD, for display.")
    ttft_ms = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    outcome = serializers.CharField()
    streamed = serializers.BooleanField()
    refunded = serializers.SerializerMethodField()

    def get_key_revoked(self, record: Any) -> bool:
        return record.key_revoked_at is not None

    def get_refunded(self, record: UsageRecord) -> bool:
        return record.refunded_at is not None


class UsageListApi(APIView):
    """Your settled requests, newest first, 50 a page (`page_size` up to 200)."""

    pagination_class = UsagePagination
    OutputSerializer = UsageRowOutput

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={
            200: OutputSerializer(many=True),
            400: _ERRORS,
            404: OpenApiResponse(description="The page is past the last one."),
        },
    )
    def get(self, request: Request) -> Response:
        records: QuerySet[UsageRecord] = selectors.usage_list(
            buyer=request.user, filters=usage_filter_parse(request)
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(records, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class _JsonErrors(BaseContentNegotiation):
    """The CSV export answers CSV or, for a refused request, DRF's JSON error: whatever the
    client's Accept header or `?format=` asks for (DRF would answer 406 or 404 to text/csv)."""

    def select_parser(self, request, parsers):  # type: ignore[no-untyped-def]
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):  # type: ignore[no-untyped-def]
        return renderers[0], renderers[0].media_type


class UsageExportApi(APIView):
    """The filtered usage as CSV (the columns of the usage page's export, docs/exports.md),
    streamed: however long the history, the server holds one page of rows at a time."""

    content_negotiation_class = _JsonErrors

    @extend_schema(
        operation_id="usage_export_csv",
        parameters=FILTER_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR, description="One header line, then one row a request."
            ),
            400: _ERRORS,
        },
    )
    def get(self, request: Request) -> Any:
        filters = usage_filter_parse(request)
        return csv_response(USAGE, selectors.usage_list(buyer=request.user, filters=filters))


class DisputeRefused(APIException):
    """A dispute the rules refuse: DRF's `{"detail": "..."}` with the status the refusal names
    (billing.errors.http_status: 404, 409 or 429)."""

    def __init__(self, exc: BillingError) -> None:
        self.status_code = http_status(exc)
        super().__init__(detail=str(exc))


@extend_schema_serializer(component_name="Dispute")
class DisputeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    request_id = serializers.CharField(source="usage.request_id")
    reason = serializers.ChoiceField(choices=DisputeReason.choices)
    detail = serializers.CharField()
    status = serializers.ChoiceField(choices=DisputeStatus.choices)
    note = serializers.CharField(help_text="The operator's note with the decision.")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    paid_nusd = serializers.IntegerField(
        source="usage.buyer_debit_nusd", help_text="What you paid for the request (nano-USD)."
    )


_DISPUTE_REFUSED = OpenApiResponse(
    response=inline_serializer("DisputeRefused", fields={"detail": serializers.CharField()}),
    description="404: no such request of yours. 409: already disputed, already refunded, not "
    "charged, or settled longer ago than the dispute window. 429: too many disputes open or "
    "opened today.",
)


class DisputeCreateApi(APIView):
    """Dispute one settled request of yours (billing policy rule 12). A personal token needs the
    `disputes:write` scope: a dispute can move money back to you, a write of its own kind."""

    required_scope = "disputes:write"

    @extend_schema_serializer(component_name="DisputeCreateInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.ChoiceField(choices=DisputeReason.choices)
        detail = serializers.CharField(
            required=False, allow_blank=True, max_length=DISPUTE_DETAIL_MAX, default=""
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: DisputeOutput, 400: OpenApiTypes.OBJECT, 404: _DISPUTE_REFUSED,
                   409: _DISPUTE_REFUSED, 429: _DISPUTE_REFUSED},
    )  # fmt: skip
    def post(self, request: Request, request_id: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            dispute = services.dispute_open(
                buyer=request.user,
                request_id=request_id,
                reason=serializer.validated_data["reason"],
                detail=serializer.validated_data["detail"],
            )
        except BillingError as exc:
            raise DisputeRefused(exc) from None
        return Response(DisputeOutput(dispute).data, status=status.HTTP_201_CREATED)


class DisputeListApi(APIView):
    """Your disputes and their outcomes, newest first, 50 a page (`page_size` up to 200)."""

    pagination_class = UsagePagination

    @extend_schema(
        responses={
            200: DisputeOutput(many=True),
            400: OpenApiResponse(
                response=inline_serializer(
                    "DisputePageError",
                    fields={
                        name: serializers.ListField(child=serializers.CharField(), required=False)
                        for name in ("page", "page_size")
                    },
                ),
                description="`page` or `page_size` is not a whole number in its range.",
            ),
            404: OpenApiResponse(description="The page is past the last one."),
        }
    )
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            dispute_selectors.dispute_list(buyer=request.user), request, view=self
        )
        return paginator.get_paginated_response(DisputeOutput(page, many=True).data)
