"""The management API's OpenAPI document: drf-spectacular's, plus the error answers DRF gives.

drf-spectacular documents each operation's success only, so a client (or Schemathesis, in
tests/e2e/test_e2e_contract.py) would find every 400, 403 and 404 undocumented. They have two
shapes, both DRF's: `{"detail": "..."}` for authentication, permission, not-found and media-type
refusals, and `{"<field>": ["..."], "non_field_errors": [...]}` for invalid input. A path under
/api/ that matches no route answers the same JSON 404 (`not_found`), not Django's HTML page.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.generators import SchemaGenerator
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

DETAIL = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string"}},
}
INVALID = {
    "type": "object",
    "description": "Messages per field (`non_field_errors` for the body as a whole), or `detail`.",
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "items": {"type": "string"}},
            {"type": "object"},
            {"type": "string"},
        ]
    },
}
_REFUSALS = {
    "401": "Not authenticated.",
    "403": "Not authenticated (a session without a token), or not allowed.",
}


def _answer(description: str, name: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }


def with_errors(schema: dict) -> dict:
    """Adds the error answers each operation can give to a drf-spectacular document."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorDetail"] = DETAIL
    components["ValidationErrors"] = INVALID
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for status, description in _REFUSALS.items():
                responses.setdefault(status, _answer(description, "ErrorDetail"))
            if "{" in path:
                responses.setdefault(
                    "404", _answer("Not one of yours, or no such id.", "ErrorDetail")
                )
            if method != "get":
                responses.setdefault("400", _answer("Invalid input.", "ValidationErrors"))
            if "requestBody" in operation:
                responses.setdefault("415", _answer("Unsupported media type.", "ErrorDetail"))
    return schema


class ApiSchemaGenerator(SchemaGenerator):
    def get_schema(self, request=None, public=False):
        return with_errors(super().get_schema(request=request, public=public))


class NotFoundApi(APIView):
    """Any /api/ path no route matches, with any method: DRF's JSON 404 (it names nothing, so
    it needs no login)."""

    permission_classes = [AllowAny]

    def http_method_not_allowed(self, request: Request, *args, **kwargs) -> Response:
        raise Http404
