"""GET /v1/openapi.json: the /v1 OpenAPI document (gateway/openapi.yaml), served from memory.

The document is hand-written YAML in the repository, reviewed like code; it is read and encoded
once, when the gateway is imported (before the event loop serves anything, so no request ever
waits on the file). The answer is the same for everyone: no key, no rate-limit headers (they
would differ per client and defeat a shared cache), and an ETag, so a client polling it gets 304.
docs/gateway.md, "Schema".
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import yaml

from gateway.headers import request_map
from gateway.response import JSON, Response

PATH = Path(__file__).with_name("openapi.yaml")


def load() -> dict:
    """The document as a dict (the tests read it this way too)."""
    with PATH.open("rb") as source:
        return yaml.load(source, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


BODY = orjson.dumps(load())
ETAG = b'"' + hashlib.sha256(BODY).hexdigest()[:32].encode() + b'"'
_CACHING = [(b"etag", ETAG), (b"cache-control", b"public, max-age=300")]


async def document(scope, receive, out: Response) -> None:
    sent = request_map(scope).get(b"if-none-match", b"")
    if ETAG in (tag.strip() for tag in sent.split(b",")) or sent.strip() == b"*":
        await out.start(304, JSON, _CACHING)  # no body and no length: it is a 304
        await out.body(b"", more=False)
        return
    await out.complete(200, JSON, BODY, _CACHING)
