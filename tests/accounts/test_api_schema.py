"""The management API's schema documents DRF's error answers, and an /api/ path no route matches
answers DRF's JSON 404 rather than Django's HTML page (accounts/api_schema.py)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_every_operation_documents_its_error_answers():
    schema = Client().get("/api/schema/?format=json").json()
    operations = {
        (method, path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    assert operations, "the schema lists the management API"
    for (method, path), operation in operations.items():
        responses = operation["responses"]
        assert {"401", "403"} <= set(responses), (method, path)
        if "{" in path:  # an id in the path: another user's or a missing object is a 404
            assert "404" in responses, (method, path)
        if method != "get":  # a body: a field can be refused (a GET with a filter may be too)
            assert "400" in responses, (method, path)
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert detail["required"] == ["detail"]


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_an_unmatched_api_path_is_a_json_404(method):
    response = getattr(Client(), method)("/api/profiles/not-a-number/update/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_path_without_its_slash_still_redirects_to_it(settings):
    settings.APPEND_SLASH = True
    response = Client().get("/api/keys")
    assert response.status_code == 301
    assert response["Location"] == "/api/keys/"
