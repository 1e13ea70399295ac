"""The /v1 data plane: a lean ASGI application, routed to before Django.

`application` picks the endpoint by path and renders errors. Every billed endpoint runs the one
pipeline, trade.run (docs/gateway.md, "The pipeline"), with what differs between them as an
`Endpoint` (call.py): its parser (a dialect, dialects.py, for chat), its sizing (metering.py)
and its serve function (proxy.py; embeddings.py holds all three for /v1/embeddings). Each step is one module: request (body and validation), auth
(access key), admission (turns), routing (table, constraints, ranking, stickiness), capacity
(listing caps), limits (Redis rate limits), spend (the key's spend limit), money (hold and
settlement), proxy/relay/upstream (calling listings with failover, streaming), health_reports
(passive health), headers and errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import parse_qs

from gateway import (
    auth,
    catalogue,
    dialects,
    embeddings,
    generation,
    key_info,
    limit_headers,
    metering,
    openapi,
    process,
    proxy,
    request,
    rerank,
    routing,
    runtime,
    trade,
)
from gateway.anthropic import AnthropicRequestError, count_tokens_response
from gateway.call import Endpoint
from gateway.errors import GatewayError, bad_request
from gateway.headers import request_map
from gateway.response import Response
from observability.logs import request_id_var
from observability.metrics import GATEWAY_LATENCY, GATEWAY_REQUESTS, labelled

logger = logging.getLogger("gateway")


CHAT_COMPLETIONS = Endpoint(
    modality="chat",
    parse=dialects.OPENAI.parse,
    size=metering.chat_meter,
    serve=proxy.serve_chat,
    dialect=dialects.OPENAI,
)
MESSAGES = Endpoint(
    modality="chat",
    parse=dialects.ANTHROPIC.parse,
    size=metering.chat_meter,
    serve=proxy.serve_chat,
    dialect=dialects.ANTHROPIC,
)
AUDIO_SPEECH = Endpoint(
    modality="speech",
    parse=request.speech_from,
    size=metering.speech_meter,
    serve=proxy.serve_speech,
)
RERANK = Endpoint(
    modality="rerank",
    parse=rerank.rerank_from,
    size=rerank.rerank_meter,
    serve=rerank.serve_rerank,
)

EMBEDDINGS = Endpoint(
    modality="embedding",
    parse=embeddings.embeddings_from,
    size=embeddings.size,
    serve=embeddings.serve,
)


async def chat_completions(scope, receive, out: Response) -> None:
    await trade.run(scope, receive, out, CHAT_COMPLETIONS)


async def messages(scope, receive, out: Response) -> None:
    await trade.run(scope, receive, out, MESSAGES)


async def audio_speech(scope, receive, out: Response) -> None:
    await trade.run(scope, receive, out, AUDIO_SPEECH)


async def rerank_documents(scope, receive, out: Response) -> None:
    await trade.run(scope, receive, out, RERANK)


async def embeddings_create(scope, receive, out: Response) -> None:
    await trade.run(scope, receive, out, EMBEDDINGS)


async def count_tokens(scope, receive, out: Response) -> None:
    """Anthropic's token estimate: authenticated and counted as a request, never billed."""
    headers = request_map(scope)
    key = await auth.authenticate(headers, scope)
    body = request.parse_json_object(await request.read_body(scope, receive))
    try:
        answer = count_tokens_response(body)
    except AnthropicRequestError as exc:
        raise bad_request(exc.message) from None
    routed = await trade.route(headers, key, body["model"], modality="chat")
    out.add(list(routed.alias_headers))
    await trade.rate_limit(out, key, 0)
    await out.json(200, answer)


async def models(scope, receive, out: Response, model_id: str | None = None) -> None:
    """No key needed; a key sent must be valid (it is what the rate-limit headers count)."""
    headers = request_map(scope)
    if auth.presented(headers):
        await auth.identify(headers, scope)
    table = await routing.table()
    if model_id:
        answer = catalogue.model_detail(table, model_id)
    else:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        include_all = query.get("all", ["false"])[-1].lower() in ("1", "true", "yes")
        answer = catalogue.model_list(table, include_all=include_all)
    await limit_headers.stamp(out, scope)
    await out.json(200, answer)


_EXACT = {
    "/v1/chat/completions": ("POST", chat_completions),
    "/v1/messages": ("POST", messages),
    "/v1/messages/count_tokens": ("POST", count_tokens),
    "/v1/audio/speech": ("POST", audio_speech),
    "/v1/rerank": ("POST", rerank_documents),
    "/v1/embeddings": ("POST", embeddings_create),
    "/v1/models": ("GET", models),
    "/v1/key": ("GET", key_info.key),
    "/v1/credits": ("GET", key_info.credits),
    "/v1/openapi.json": ("GET", openapi.document),
    "/v1/generation": ("GET", generation.generation),
}
MODEL_PREFIX = "/v1/models/"


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every route, as gateway/openapi.yaml names them."""
    return [(method, path) for path, (method, _) in _EXACT.items()] + [
        ("GET", MODEL_PREFIX + "{model_id}")
    ]


def _endpoint(path: str):
    path = path.rstrip("/")
    if path in _EXACT:
        method, handler = _EXACT[path]
        return method, handler, {}
    if path.startswith(MODEL_PREFIX):
        return "GET", models, {"model_id": path[len(MODEL_PREFIX) :]}
    return None


def _error_shape(path: str):
    """Anthropic's error body on the Anthropic-shaped paths (including their 404/405), else ours."""
    if path.rstrip("/").startswith("/v1/messages"):
        return dialects.ANTHROPIC.error_body
    return dialects.OPENAI.error_body


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    request_id = process.request_id()
    request_id_var.set(request_id)
    out = Response(send, request_id, _error_shape(scope["path"]))
    started = time.monotonic()
    endpoint = _endpoint(scope["path"])
    name = "unknown" if endpoint is None else endpoint[1].__name__
    try:
        if endpoint is None:
            raise GatewayError(
                404, f"Unknown endpoint {scope['path']}: see the API docs for /v1 paths."
            )
        method, handler, kwargs = endpoint
        if scope["method"] != method:
            raise GatewayError(
                405,
                f"{scope['method']} is not allowed on {scope['path']}: use {method}.",
                headers=[(b"allow", method.encode())],
            )
        await handler(scope, receive, out, **kwargs)
    except GatewayError as exc:
        if not out.started:
            unrouted = endpoint is None or scope["method"] != endpoint[0]
            await limit_headers.stamp(out, scope, exc, unrouted=unrouted)
            await out.error(exc)
    except request.ClientGone:
        pass
    except asyncio.CancelledError:
        if not out.disconnected:
            raise
        asyncio.current_task().uncancel()  # the buyer left; settlement already ran or runs on
    except Exception:
        logger.exception("unhandled error on %s", scope["path"])
        if not out.started:
            await limit_headers.stamp(out, scope)
            await out.error(GatewayError(500, "Internal error; retry with exponential backoff."))
        elif not out.finished:
            await out.body(b"", more=False)
    finally:
        out.stop_watching()
        labelled(GATEWAY_REQUESTS, name, str(out.status or 499)).inc()
        labelled(GATEWAY_LATENCY, name).observe(time.monotonic() - started)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            runtime.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def shutdown() -> None:
    """Close this loop's runtime: everything it holds, in order (gateway/runtime.py)."""
    await runtime.current().close()
