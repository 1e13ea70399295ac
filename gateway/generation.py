"""GET /v1/generation?id=<request id>: one settled request of the key's account, as OpenRouter's
clients ask for it (docs/gateway.md, "Generation lookup").

Authenticated by the access key (auth.identify: 401 for a missing, unknown or revoked key); one
indexed read of the usage record by its request id, scoped to the key's account
(billing.selectors.usage_generation, the same record the dashboard's usage detail page shows). A
request of another account is a 404 exactly like an unknown one. The id must look like the ids the
gateway gives (`req_` and letters, digits, `_` or `-`): anything else is a 400 that reads nothing.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from billing.generation import REQUEST_ID
from gateway import auth, limit_headers
from gateway.db import db_call
from gateway.errors import GatewayError, bad_request
from gateway.headers import request_map
from gateway.response import Response


def request_id_from(query_string: bytes) -> str:
    """The one `id` the query carries, or a 400."""
    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    ids = query.get("id", [])
    if len(ids) != 1:
        raise bad_request(
            "Send the request id as ?id=<request id> (the `id` of an answer, or its "
            "X-Request-Id header), once."
        )
    if not REQUEST_ID.fullmatch(ids[0]):
        raise bad_request("'id' is not a request id: they look like req_0123456789abcdef01234567.")
    return ids[0]


def _record(user_id: int, request_id: str) -> dict | None:
    from billing.selectors import usage_generation

    return usage_generation(buyer=user_id, request_id=request_id)


async def generation(scope, receive, out: Response) -> None:
    record = await auth.identify(request_map(scope), scope)
    request_id = request_id_from(scope.get("query_string", b""))
    data = await db_call(_record, record["user_id"], request_id, idempotent=True)
    if data is None:
        raise GatewayError(404, f"No settled request {request_id} on this account.")
    await limit_headers.stamp(out, scope)
    await out.json(200, {"data": data})
