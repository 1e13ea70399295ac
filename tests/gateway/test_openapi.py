"""gateway/openapi.yaml is valid OpenAPI 3.1, names exactly the routes the gateway answers, and is
served at GET /v1/openapi.json (no key, cacheable). What the server answers against it is
tests/e2e/test_e2e_contract.py's job."""

from __future__ import annotations

import copy

import jsonschema_rs
import orjson
import pytest
import schemathesis
from django.test import Client
from django.urls import reverse

from gateway import asgi, body_limits, embeddings, openapi, request, rerank
from tests.gateway.factories import buyer_make


def _documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in openapi.load()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_the_document_is_valid_openapi_3_1():
    document = openapi.load()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()

    broken = copy.deepcopy(document)
    broken["paths"]["/v1/key"]["get"]["responses"]["200"] = {"content": "not an object"}
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def test_every_route_is_documented_and_every_documented_path_is_routed():
    routed = set(asgi.routes())
    assert routed - _documented() == set(), "routes missing from gateway/openapi.yaml"
    assert _documented() - routed == set(), "documented paths the gateway does not serve"


def test_the_documented_bounds_are_the_parsers():
    schemas = openapi.load()["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]["properties"]
    assert chat["model"]["maxLength"] == body_limits.MAX_MODEL_CHARS
    assert chat["messages"]["maxItems"] == body_limits.MAX_MESSAGES
    assert chat["tools"]["maxItems"] == body_limits.MAX_TOOLS
    assert chat["max_tokens"]["maximum"] == body_limits.MAX_TOKENS
    assert chat["n"]["maximum"] == body_limits.MAX_CHOICES
    assert chat["top_logprobs"]["maximum"] == body_limits.MAX_TOP_LOGPROBS
    assert chat["logit_bias"]["maxProperties"] == body_limits.MAX_LOGIT_BIAS
    assert chat["metadata"]["maxProperties"] == body_limits.MAX_METADATA
    assert set(schemas["ChatMessage"]["properties"]["role"]["enum"]) == request.MESSAGE_ROLES
    speech = schemas["SpeechRequest"]["properties"]
    assert speech["input"]["maxLength"] == request.SPEECH_MAX_CHARS
    assert set(speech["voice"]["enum"]) - {None} == set(request.VOICES)
    assert set(speech["response_format"]["enum"]) - {None} == set(request.SPEECH_FORMATS)
    embed = schemas["EmbeddingsRequest"]
    assert set(embed["properties"]) - {"provider"} == set(embeddings.FIELDS)
    assert embed["properties"]["dimensions"]["maximum"] == embeddings.MAX_DIMENSIONS
    assert embed["properties"]["user"]["maxLength"] == embeddings.MAX_USER_CHARS
    ranked = schemas["RerankRequest"]["properties"]
    assert ranked["query"]["maxLength"] == rerank.MAX_QUERY_CHARS
    assert ranked["documents"]["maxItems"] == rerank.MAX_DOCUMENTS
    assert ranked["documents"]["items"]["anyOf"][0]["maxLength"] == rerank.MAX_DOCUMENT_CHARS


async def test_it_serves_the_document_without_a_key_and_answers_304_to_its_etag(client):
    response = await client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-df-market-request-id"].startswith("req_")
    assert orjson.loads(response.content) == openapi.load()
    etag = response.headers["etag"]

    again = await client.get("/v1/openapi.json", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    stale = await client.get("/v1/openapi.json", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200
    assert (await client.post("/v1/openapi.json")).status_code == 405


@pytest.mark.django_db
def test_the_quick_start_links_the_document():
    buyer = buyer_make()
    client = Client()
    client.force_login(buyer.user)
    page = client.get(reverse("dashboard_quickstart"), HTTP_HOST="127.0.0.1:8000")
    assert page.status_code == 200
    assert 'href="http://127.0.0.1:8000/v1/openapi.json"' in page.content.decode()
