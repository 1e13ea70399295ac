"""Schemathesis against the real server: every operation of /v1 (GET /v1/openapi.json, the
hand-written gateway/openapi.yaml) and of /api/ (drf-spectacular's /api/schema/) is sent bodies,
parameters and headers generated from its own schema, valid and invalid, and every answer must be
no server error and conform to the schema: a documented status, content type, headers and body.

The buyer is funded and listings for the chat, speech, embedding and rerank models are live on the
simulator, so valid /v1 requests are served and billed for real. One exception to "no 5xx": a 503
`market_unavailable` whose `constraints` name only filters the request itself chose (a generated
`X-Provider-Only: x` removes every listing); that is the documented answer to the buyer's own
constraints, not a server fault. Derandomized with bounded examples per operation (12 valid and
12 invalid, after the document's own examples), so each run sends the same requests; /v1 takes
about 3 minutes on 2 busy cores, most of it Hypothesis building Messages bodies, and /api/ about
one. The summary (requests, statuses per operation) is printed even without -s. The /api/ session is a logged-in buyer's
cookie with Django's CSRF secret as cookie and header, what a browser script would send.
"""

from __future__ import annotations

import secrets
from collections import Counter

import pytest
import requests
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway import asgi, routing

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(600),  # /v1 takes about 3 minutes on 2 busy cores, most of it generation
]

CHAT_MODEL = "deepseek/deepseek-chat"
SPEECH_MODEL = "minimax/speech-02-hd"
SPEECH_DEFAULT = "minimax/speech-02-turbo"
EMBEDDING_MODEL = "minimax/embo-01"
RERANK_MODEL = "jina/jina-reranker-v2-base-multilingual"
EXAMPLES = 12  # per operation and generation mode: 24 requests per operation
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Filters a request sets itself (headers or the body's provider object): a 503 naming only these
# is the answer to the buyer's own constraints (docs/gateway.md, "Errors"). routing.REASONS lists
# the listing's own state first (suspended ... daily_spend_cap), then the buyer's filters.
BUYERS_OWN = frozenset(routing.REASONS[routing.REASONS.index("max_price") :])


def _server_error(response: requests.Response) -> str | None:
    if response.status_code < 500:
        return None
    if response.status_code == 503:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        constraints = error.get("constraints") if isinstance(error, dict) else None
        if constraints and set(constraints) <= BUYERS_OWN:
            return None
    return f"{response.status_code}: {response.text[:300]}"


class Exercise:
    """Sends each operation's generated requests and collects what breaks the contract."""

    def __init__(self, *, base_url: str, headers: dict, cookies: dict | None = None) -> None:
        self.base_url = base_url
        self.headers = headers
        self.cookies = cookies
        self.session = requests.Session()
        self.failures: list[str] = []
        self.statuses: Counter = Counter()

    def run(self, schema) -> None:
        """Every operation, valid requests then invalid ones."""
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    self.operation(operation, mode)
                except Unsatisfiable:  # no parameter and no body: nothing to get wrong
                    assert mode == GenerationMode.NEGATIVE
        self.session.close()

    def operation(self, operation, mode: GenerationMode) -> None:
        where = f"{operation.label} ({mode.value})"

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,  # the same requests on every run and machine
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # failures are collected, not raised
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def send(case):
            self.send(case, where)

        send()

    def send(self, case, where: str) -> int:
        """Send one case, count its status and collect how it breaks the contract, if it does."""
        response = case.call(
            base_url=self.base_url,
            session=self.session,
            headers=self.headers,
            cookies=self.cookies,
            timeout=60,
        )
        self.statuses[(case.operation.label, response.status_code)] += 1
        problem = _server_error(response)
        if problem:
            curl = case.as_curl_command()[:3000]
            self.failures.append(f"{where}: server error {problem}\n{curl}")
        try:
            case.validate_response(response, checks=CHECKS, headers=self.headers)
        except FailureGroup as exc:
            self.failures.append(f"{where}: {str(exc)[:3000]}")
        return response.status_code


def _report(title: str, exercise: Exercise, capsys) -> None:
    by_operation: dict[str, dict[int, int]] = {}
    for (label, status), count in sorted(exercise.statuses.items()):
        by_operation.setdefault(label, {})[status] = count
    requests_sent = sum(exercise.statuses.values())
    with capsys.disabled():
        print(f"\n{title}: {requests_sent} requests, {len(exercise.failures)} failures")
        for label, counts in by_operation.items():
            print(f"  {label}: {counts}")


def test_v1_answers_every_generated_request_as_its_schema_says(world, capsys):
    buyer = world.buyer(credit_usd="1000")
    world.listing(key="sim-contract-chat", concurrency_cap=64)
    world.listing(key="sim-contract-tts", provider="minimax", models=(SPEECH_MODEL, SPEECH_DEFAULT))
    world.listing(key="sim-contract-embed", provider="minimax", models=(EMBEDDING_MODEL,))
    world.listing(key="sim-contract-rerank", provider="jina", models=(RERANK_MODEL,))
    for model in (CHAT_MODEL, SPEECH_MODEL, EMBEDDING_MODEL, RERANK_MODEL):
        world.routable(model, 1)
    schema = schemathesis.openapi.from_url(world.server.url + "/v1/openapi.json")

    exercise = Exercise(base_url=world.server.url, headers={"Authorization": f"Bearer {buyer.key}"})
    exercise.run(schema)

    _report("/v1 contract", exercise, capsys)
    assert exercise.failures == [], "\n\n".join(exercise.failures[:10])
    # Every path but the document's own (Schemathesis leaves out the URL it loaded the schema from;
    # tests/gateway/test_openapi.py checks that one).
    assert {label for label, _ in exercise.statuses} == {
        f"{method} {path}" for method, path in asgi.routes() if path != "/v1/openapi.json"
    } | {"GET /v1/generation"}  # documented ahead of its route (tests/gateway/test_openapi.py)
    served = {label for (label, status) in exercise.statuses if status == 200}
    assert {"POST /v1/chat/completions", "POST /v1/audio/speech", "POST /v1/rerank"} <= served


def test_api_answers_every_generated_request_as_its_schema_says(world, capsys):
    buyer = world.buyer(credit_usd="10")
    client = Client()
    client.force_login(buyer.user)
    csrf = secrets.token_hex(16)  # Django takes a 32-character secret as cookie and header alike
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf}
    schema = schemathesis.openapi.from_url(world.server.url + "/api/schema/?format=json")

    exercise = Exercise(
        base_url=world.server.url,
        headers={"X-CSRFToken": csrf, "Referer": world.server.url + "/"},
        cookies=cookies,
    )
    # The session alone reads the account and creates a key (the documented example), before the
    # generated requests: they may all carry a junk Authorization header or an invalid body (which
    # ones differs between a full run and this file alone, for a reason not found: seeding
    # `random` does not move it), and after them the exercise's own copy of the example may
    # already hold its name (a 400).
    account = schema["/api/account/"]["GET"]
    assert exercise.send(account.Case(), "GET /api/account/ (the session alone)") == 200
    create = schema["/api/keys/create/"]["POST"]
    documented = create.definition.raw["requestBody"]["content"]["application/json"]["examples"]
    (example,) = [example["value"] for example in documented.values()]
    case = create.Case(body=example, media_type="application/json")
    assert exercise.send(case, "POST /api/keys/create/ (documented example)") == 201
    exercise.run(schema)

    _report("/api/ contract", exercise, capsys)
    assert exercise.failures == [], "\n\n".join(exercise.failures[:10])
    served = {label for (label, status) in exercise.statuses if status in (200, 201)}
    assert {"GET /api/account/", "POST /api/keys/create/"} <= served
