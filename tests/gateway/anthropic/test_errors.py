"""Anthropic-shaped error bodies for our statuses."""

import orjson
import pytest

from gateway.anthropic import anthropic_error_body, anthropic_error_type


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (599, "api_error"),
    ],
)
def test_it_maps_our_status_to_anthropics_error_type(status, error_type):
    assert anthropic_error_type(status) == error_type


def test_insufficient_balance_keeps_our_403_as_permission_error():
    assert orjson.loads(anthropic_error_body(403, "Insufficient balance")) == {
        "type": "error",
        "error": {"type": "permission_error", "message": "Insufficient balance"},
    }


def test_it_accepts_an_explicit_type_and_request_id():
    body = anthropic_error_body(
        403, "Insufficient balance", error_type="billing_error", request_id="req_123"
    )
    assert orjson.loads(body) == {
        "type": "error",
        "error": {"type": "billing_error", "message": "Insufficient balance"},
        "request_id": "req_123",
    }
