"""POST /v1/embeddings: OpenAI's body validated, sized and served through the market.

The body is OpenAI's (`model`, `input`, `encoding_format`, `dimensions`, `user`) plus one field of
our own, `input_type` ("document", the default, or "query": MiniMax embeds the two differently).
Any other field is a 400 naming it: no field is passed through, because the upstream body is
built here for each wire format (docs/gateway.md, "Embeddings").

Each provider's embeddings speak one wire format (`wire`): MiniMax its native one
(upstream/minimax.py: text only, fixed 1536 dimensions), every other provider OpenAI's
(upstream/openai.py). What a wire cannot do is refused before anything is held: token ids for a
text-only wire, a `dimensions` other than a fixed-size wire's. The upstream is always asked for
floats; `base64` (little-endian float32, as OpenAI sends it) is encoded here.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway import answer_cost, metering, proxy, request
from gateway.call import Call
from gateway.errors import bad_request
from gateway.metering import Meter
from gateway.upstream import minimax, openai
from gateway.upstream.base import UpstreamError
from gateway.upstream.vectors import Embedded
from market.route_candidates import RouteCandidate

FIELDS = ("model", "input", "encoding_format", "dimensions", "user", "input_type")
ENCODINGS = ("float", "base64")
INPUT_TYPES = tuple(minimax.EMBEDDING_TYPES)  # document, query
MAX_INPUTS = 2_048  # inputs per request (OpenAI's cap)
MAX_INPUT_IDS = 8_192  # token ids in one input (OpenAI's per-input cap)
MAX_TOTAL_IDS = 300_000  # token ids in one request (OpenAI's per-request cap)
MAX_TOKEN_ID = (1 << 31) - 1  # a vocabulary index fits a signed 32-bit integer
MAX_DIMENSIONS = 16_384
MAX_USER_CHARS = 256

_INPUT_SHAPE = (
    "'input' is required: a string, an array of strings, an array of token ids, or an array of "
    "token-id arrays."
)


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    model: str
    inputs: list  # strings, or token-id arrays (as_tokens)
    as_tokens: bool
    encoding_format: str
    dimensions: int | None
    user: str | None
    input_type: str

    @property
    def stream(self) -> bool:
        return False  # vectors come back whole


def embeddings_from(data: dict) -> EmbeddingsRequest:
    """Validates an embeddings body: a 400 naming the first field that is wrong."""
    for name in data:
        if name not in FIELDS:
            raise bad_request(
                f"'{name}' is not a field of /v1/embeddings (it takes {', '.join(FIELDS)})."
            )
    model = request.model_field(data)
    inputs, as_tokens = _inputs(data.get("input"))
    return EmbeddingsRequest(
        model=model,
        inputs=inputs,
        as_tokens=as_tokens,
        encoding_format=_choice(data, "encoding_format", ENCODINGS),
        dimensions=_dimensions(data.get("dimensions")),
        user=_user(data.get("user")),
        input_type=_choice(data, "input_type", INPUT_TYPES),
    )


def _inputs(value: object) -> tuple[list, bool]:
    """(inputs, as_tokens): one string, strings, one token array, or token arrays; never empty."""
    if isinstance(value, str):
        if not value:
            raise bad_request("'input' must not be an empty string.")
        return [value], False
    if not isinstance(value, list) or not value:
        raise bad_request(_INPUT_SHAPE)
    first = value[0]
    if type(first) is int:  # one token array
        _token_ids(value, "input")
        return [value], True
    if len(value) > MAX_INPUTS:
        raise bad_request(f"'input' must hold at most {MAX_INPUTS} inputs.")
    if isinstance(first, str):
        for index, text in enumerate(value):
            if not isinstance(text, str):
                raise bad_request(f"'input[{index}]' must be a string, like the other inputs.")
            if not text:
                raise bad_request(f"'input[{index}]' must not be an empty string.")
        return value, False
    if isinstance(first, list):
        total = 0
        for index, ids in enumerate(value):
            where = f"input[{index}]"
            if not isinstance(ids, list) or not ids:
                raise bad_request(f"'{where}' must be a non-empty array of token ids.")
            _token_ids(ids, where)
            total += len(ids)
        if total > MAX_TOTAL_IDS:
            raise bad_request(f"'input' must hold at most {MAX_TOTAL_IDS} token ids in all.")
        return value, True
    raise bad_request(_INPUT_SHAPE)


def _token_ids(ids: list, where: str) -> None:
    if len(ids) > MAX_INPUT_IDS:
        raise bad_request(f"'{where}' must hold at most {MAX_INPUT_IDS} token ids.")
    # type() is exact: a boolean is no token id, and orjson reads integers past 64 bits as floats
    if not all(type(t) is int and 0 <= t <= MAX_TOKEN_ID for t in ids):
        raise bad_request(
            f"'{where}' must hold token ids: integers from 0 to {MAX_TOKEN_ID}, nothing else."
        )


def _choice(data: dict, name: str, choices: tuple[str, ...]) -> str:
    value = data.get(name)
    if value is None:
        return choices[0]
    if not isinstance(value, str) or value not in choices:
        raise bad_request(f"'{name}' must be one of {', '.join(choices)}.")
    return value


def _dimensions(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_DIMENSIONS:
        raise bad_request(f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}.")
    return value


def _user(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_USER_CHARS:
        raise bad_request(f"'user' must be a string of at most {MAX_USER_CHARS} characters.")
    return value


@dataclass(frozen=True, slots=True)
class Wire:
    """One provider's embeddings wire format: what it can take, and how it is called."""

    takes_tokens: bool  # token-id inputs (else text only)
    dimensions: int | None  # the fixed size of its vectors; None: it honours `dimensions`
    body: Callable[[EmbeddingsRequest, str], bytes]  # (request, upstream model) -> body
    open: Callable[..., Awaitable]  # (base_url, key=, body=) -> the response head
    read: Callable[..., Awaitable[Embedded]]  # (response, count=) -> the vectors


MINIMAX = Wire(
    takes_tokens=False,
    dimensions=minimax.EMBEDDING_DIMENSIONS,
    body=lambda r, model: minimax.embeddings_body(
        r.inputs, input_type=r.input_type, upstream_model=model
    ),
    open=minimax.embeddings_open,
    read=minimax.embeddings_read,
)
OPENAI = Wire(
    takes_tokens=True,
    dimensions=None,
    body=lambda r, model: openai.embeddings_body(
        r.inputs, upstream_model=model, dimensions=r.dimensions, user=r.user
    ),
    open=openai.embeddings_open,
    read=openai.embeddings_read,
)
_WIRES = {"minimax": MINIMAX}


def wire(provider_slug: str) -> Wire:
    return _WIRES.get(provider_slug, OPENAI)


def size(embeddings: EmbeddingsRequest, model: dict) -> Meter:
    """The Endpoint's size step: what the model's wire cannot do is a 400 before any hold; then
    the Meter (metering.embeddings_meter)."""
    spoken = wire(model["provider_slug"])
    if embeddings.as_tokens and not spoken.takes_tokens:
        raise bad_request(
            f"'input' holds token ids, and '{model['model_id']}' takes text only: send the text."
        )
    fixed = spoken.dimensions
    if embeddings.dimensions is not None and fixed is not None and embeddings.dimensions != fixed:
        raise bad_request(
            f"'{model['model_id']}' returns {fixed}-dimensional vectors: 'dimensions' must be "
            f"{fixed} or absent."
        )
    return metering.embeddings_meter(embeddings)


async def serve(call: Call) -> None:
    """Serve an embeddings request from the first candidate that answers (proxy.failover)."""
    await proxy.failover(call, _attempt)


async def _attempt(call: Call, candidate: RouteCandidate) -> UpstreamError | None:
    embeddings, meter = call.request, call.meter
    assert isinstance(embeddings, EmbeddingsRequest)
    spoken = wire(candidate.provider_slug)
    try:
        key = await proxy.upstream_key(candidate.listing_id)
        response = await spoken.open(
            candidate.base_url, key=key, body=spoken.body(embeddings, candidate.upstream_model)
        )
        meter.accept(candidate)
        meter.first_content()  # the response head: TTFT of a plain call
        result = await spoken.read(response, count=len(embeddings.inputs))
    except UpstreamError as exc:
        return exc
    wanted = embeddings.dimensions
    if wanted is not None and len(result.vectors[0]) != wanted:
        return UpstreamError("response's vectors were not the size asked for")
    await call.commit(candidate)
    meter.usage(result.tokens, 0)
    meter.finish()
    debit = meter.debit_nusd()
    answer = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _encoded(vector, embeddings)}
            for index, vector in enumerate(result.vectors)
        ],
        "model": candidate.model_id,
        "usage": {
            "prompt_tokens": meter.prompt_tokens_billed,
            "total_tokens": meter.units_used,
            "cost": answer_cost.usd_number(debit),
        },
    }
    extra = [*call.route.diagnostics(candidate), answer_cost.header(debit)]
    await call.out.json(200, answer, extra)
    proxy.report(candidate, ok=True, status=200, ttft_ms=meter.ttft_ms)
    return None


def _encoded(vector: array, embeddings: EmbeddingsRequest) -> list[float] | str:
    if embeddings.encoding_format == "float":
        return vector.tolist()
    packed = array("f", vector)  # float32, little-endian: what OpenAI's base64 holds
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
