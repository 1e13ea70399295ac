"""The simulated upstream as a raw ASGI application (no Django on the request path).

Entry points: ``create_app(defaults)`` builds a ``SimulatorApp``; ``application`` is one built
with no defaults (``uvicorn simulator.app:application``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson

from simulator import chat, embeddings, rerank, speech
from simulator.asgi import Ctx, Receive, Send, bearer_key, read_body
from simulator.knobs import KnobError, Knobs, Registry

MAX_BODY_BYTES = 16 * 1024 * 1024
CREATED = 1_735_689_600  # 2025-01-01, a fixed "created" for the model list

MODELS: tuple[tuple[str, str], ...] = (
    ("deepseek-v4-flash", "deepseek"),
    ("deepseek-chat", "deepseek"),
    ("deepseek-reasoner", "deepseek"),
    ("MiniMax-M2.5", "minimax"),
    ("MiniMax-M2.5-highspeed", "minimax"),
    ("speech-02-hd", "minimax"),
    ("speech-02-turbo", "minimax"),
    ("embo-01", "minimax"),
    ("jina-reranker-v2-base-multilingual", "jina"),
)

Handler = Callable[[Ctx, dict], Coroutine[Any, Any, None]] | None
# Whether a route answers errors in MiniMax's way (HTTP 200, base_resp): always, never, or as the
# body says (/embeddings speaks MiniMax's native shape when the body has `texts`).
InBody = bool | Callable[[bytes], bool]
# route (without the optional /v1 prefix) -> (method, handler, speaks MiniMax's in-body errors)
API_ROUTES: dict[str, tuple[str, Handler, InBody]] = {
    "/chat/completions": ("POST", chat.handle, False),
    "/embeddings": ("POST", embeddings.handle, embeddings.speaks_minimax),
    "/models": ("GET", None, False),
    "/rerank": ("POST", rerank.handle, False),
    "/t2a_v2": ("POST", speech.handle, True),
}

_REJECTS = {
    401: (
        "Authentication Fails, your api key is invalid",
        "authentication_error",
        "invalid_api_key",
    ),
    402: ("Insufficient Balance", "insufficient_quota", "insufficient_balance"),
    403: ("Permission denied for this api key", "permission_error", "permission_denied"),
}
_STATUS_TYPES: dict[int, tuple[str, str | None]] = {
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "overloaded"),
    504: ("server_error", "timeout"),
    401: ("authentication_error", None),
    403: ("permission_error", None),
}
_KEYS_PREFIX = "/_sim/keys/"


class SimulatorApp:
    def __init__(self, defaults: Mapping[str, object] | None = None) -> None:
        self.registry = Registry(defaults)
        self._models = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {"id": mid, "object": "model", "created": CREATED, "owned_by": owner}
                    for mid, owner in MODELS
                ],
            }
        )

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: dict, receive: Receive, send: Send) -> None:
        path = scope["path"]
        route = path[3:] if path.startswith("/v1/") else path
        body = await read_body(receive, MAX_BODY_BYTES)
        ctx = Ctx(scope, send, route, body or b"")
        if body is None:
            await ctx.error(413, "request body too large", code="request_too_large")
            return
        api = API_ROUTES.get(route)
        if api is not None:
            await self._api(ctx, api)
        elif route == "/healthz":
            await ctx.respond(200, b"ok", b"text/plain; charset=utf-8")
        elif route.startswith("/_sim/"):
            await self._control(ctx, scope["method"], route)
        else:
            await ctx.error(404, f"no route for {path}", code="not_found")

    async def _api(self, ctx: Ctx, api: tuple[str, Handler, InBody]) -> None:
        method, handler, in_body = api
        minimax = in_body(ctx.body) if callable(in_body) else in_body
        scope = ctx.scope
        if scope["method"] != method:
            await ctx.error(405, f"use {method} for {scope['path']}", code="method_not_allowed")
            return
        key = bearer_key(scope["headers"])
        registry = self.registry
        if not key:
            ctx.stats = registry.record("", ctx.path, ctx.body, scope["headers"])
            if minimax:
                await speech.error(ctx, speech.AUTH_FAILED, "missing API key")
            else:
                await ctx.error(
                    401,
                    "missing API key (send Authorization: Bearer <key>)",
                    "authentication_error",
                    "invalid_api_key",
                )
            return
        try:
            name, knobs = registry.resolve(key)
        except KnobError as exc:
            ctx.stats = registry.record(key.partition("?")[0], ctx.path, ctx.body, scope["headers"])
            await ctx.error(400, f"bad knobs in key: {exc}", code="invalid_knobs")
            return
        ctx.key_name = name
        ctx.knobs = knobs
        stats = ctx.stats = registry.record(name, ctx.path, ctx.body, scope["headers"])
        stats.in_flight += 1
        stats.most_in_flight = max(stats.most_in_flight, stats.in_flight)
        try:
            await self._answer(ctx, name, knobs, minimax, handler)
        finally:
            stats.in_flight -= 1

    async def _answer(
        self, ctx: Ctx, name: str, knobs: Knobs, minimax: bool, handler: Handler
    ) -> None:
        if await self._knob_error(ctx, name, knobs, minimax or knobs.base_resp):
            return
        if handler is None:
            await ctx.respond(200, self._models)
            return
        try:
            req = orjson.loads(ctx.body)
        except orjson.JSONDecodeError:
            req = None
        if not isinstance(req, dict):
            if minimax:
                await speech.error(ctx, speech.INVALID_PARAMS, "body must be a JSON object")
            else:
                await ctx.error(400, "request body must be a JSON object", code="invalid_json")
            return
        await handler(ctx, req)

    async def _knob_error(self, ctx: Ctx, name: str, knobs: Knobs, minimax: bool) -> bool:
        """Answer with the error a knob asks for (reject, status, error_rate), if any."""
        if knobs.reject:
            if minimax:
                await speech.error(ctx, speech.code_for_status(knobs.reject), "reject knob")
            else:
                message, type_, code = _REJECTS[knobs.reject]
                await ctx.error(knobs.reject, f"{message} (reject knob)", type_, code)
            return True
        status = knobs.status
        if not status and knobs.error_rate and self.registry.roll(name, knobs) < knobs.error_rate:
            status = 500
        if not status:
            return False
        if minimax:
            await speech.error(ctx, speech.code_for_status(status), f"status {status}")
            return True
        error_type, error_code = _STATUS_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        extra = [(b"retry-after", b"1")] if status in (429, 503) else None
        await ctx.error(status, f"status {status}", error_type, error_code, extra=extra)
        return True

    async def _control(self, ctx: Ctx, method: str, route: str) -> None:
        registry = self.registry
        if route == "/_sim/stats" and method == "GET":
            await ctx.json(200, self.stats())
        elif route == "/_sim/reset" and method == "POST":
            registry.reset()
            await ctx.json(200, {"reset": True})
        elif route.startswith(_KEYS_PREFIX) and len(route) > len(_KEYS_PREFIX):
            name = route[len(_KEYS_PREFIX) :]
            if method == "GET":
                await ctx.json(200, self._key_view(name))
            elif method == "PUT":
                try:
                    raw = orjson.loads(ctx.body or b"{}")
                    if not isinstance(raw, dict):
                        raise KnobError("body must be a JSON object of knobs")
                    registry.set_runtime(name, raw)
                except (KnobError, orjson.JSONDecodeError) as exc:
                    await ctx.error(400, str(exc), code="invalid_knobs")
                    return
                await ctx.json(200, self._key_view(name))
            elif method == "DELETE":
                await ctx.json(200, {"name": name, "deleted": registry.delete_runtime(name)})
            else:
                await ctx.error(405, "use GET, PUT or DELETE", code="method_not_allowed")
        else:
            await ctx.error(404, f"no control route {method} {route}", code="not_found")

    def _key_view(self, name: str) -> dict:
        registry = self.registry
        return {
            "name": name,
            "knobs": registry.effective(name).as_dict(),
            "runtime": registry.runtime.get(name, {}),
        }

    def stats(self) -> dict:
        """Requests seen per key name ('' = no key), with the last request of each."""
        keys = {}
        for name, s in self.registry.stats.items():
            try:
                last_body: object = orjson.loads(s.last_body) if s.last_body else None
            except orjson.JSONDecodeError:
                last_body = s.last_body.decode("utf-8", "replace")
            keys[name] = {
                "requests": s.requests,
                "most_in_flight": s.most_in_flight,
                "paths": dict(s.paths),
                "statuses": {str(k): v for k, v in s.statuses.items()},
                "last_path": s.last_path,
                "last_body": last_body,
                "last_headers": {
                    k.decode("latin-1"): v.decode("latin-1") for k, v in s.last_headers
                },
            }
        return {"total": self.registry.total, "keys": keys}


def create_app(defaults: Mapping[str, object] | None = None) -> SimulatorApp:
    """A simulator whose keys without knobs of their own behave as ``defaults`` say."""
    return SimulatorApp(defaults)


application = create_app()
