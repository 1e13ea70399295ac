"""The wire shapes a chat request can arrive in: OpenAI chat.completions and Anthropic Messages.

A dialect parses the buyer's body into the one ChatRequest the pipeline serves (always an OpenAI
body, since every upstream speaks OpenAI), renders refusals in its error shape, and translates the
upstream's answer back: a plain completion, or a stream through a StreamFormat (relay.py). Either
way the answer's usage is what is billed, with its cost (`priced`, and the formats' closing usage;
gateway/answer_cost.py).
"""

from __future__ import annotations

import orjson

from gateway import answer_cost, request
from gateway.anthropic import (
    AnthropicRequestError,
    AnthropicResponseError,
    OpenAIToAnthropicStream,
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)
from gateway.anthropic.errors import anthropic_error_dict, anthropic_error_type
from gateway.anthropic.response import anthropic_usage
from gateway.errors import GatewayError, bad_request
from gateway.metering import Meter
from gateway.relay import AnthropicEvents, OpenAIChunks, StreamFormat
from gateway.request import ChatRequest
from gateway.upstream.base import UpstreamError


class OpenAIDialect:
    """/v1/chat/completions: the buyer's body passes through; answers carry the model name the
    buyer sent (the catalogue id, or an alias: X-DF-Model-Alias names the model it went to)."""

    name = "openai"

    def parse(self, data: dict) -> ChatRequest:
        return request.chat_from(data)

    def error_body(self, error: GatewayError, request_id: str) -> bytes:
        return error.body(request_id)

    def completion(self, data: dict, chat: ChatRequest, model_id: str) -> dict:
        data["model"] = chat.model
        return data

    def priced(self, answer: dict, meter: Meter, debit_nusd: int) -> dict:
        """The completion's usage: the tokens billed, the upstream's other fields, the cost."""
        answer["usage"] = answer_cost.openai_usage(meter, debit_nusd, answer.get("usage"))
        return answer

    def stream(self, chat: ChatRequest, model_id: str, input_tokens: int) -> StreamFormat:
        return OpenAIChunks(model=chat.model, include_usage=chat.include_usage)


class AnthropicDialect:
    """/v1/messages: translated to OpenAI on the way in and back on the way out (docs/anthropic.md).

    Answers name the model the buyer asked for (a Claude name the profile aliased stays that name).
    """

    name = "anthropic"

    def parse(self, data: dict) -> ChatRequest:
        try:
            translated = anthropic_request_to_openai(data)
        except AnthropicRequestError as exc:
            raise bad_request(exc.message) from None
        return request.chat_from(translated)

    def error_body(self, error: GatewayError, request_id: str) -> bytes:
        body = anthropic_error_dict(
            error.public_message(request_id), anthropic_error_type(error.status), request_id
        )
        body["error"].update(error.extra)  # the 503's "constraints", as on the OpenAI endpoints
        return orjson.dumps(body)

    def completion(self, data: dict, chat: ChatRequest, model_id: str) -> dict:
        try:
            return openai_response_to_anthropic(data, model=chat.model)
        except AnthropicResponseError:
            # Before commit: another listing may answer in a form Anthropic can express.
            raise UpstreamError("completion has no Anthropic form") from None

    def priced(self, answer: dict, meter: Meter, debit_nusd: int) -> dict:
        """The Message's usage: the tokens billed and the cost, translated from OpenAI's."""
        answer["usage"] = anthropic_usage(answer_cost.openai_usage(meter, debit_nusd))
        return answer

    def stream(self, chat: ChatRequest, model_id: str, input_tokens: int) -> StreamFormat:
        return AnthropicEvents(OpenAIToAnthropicStream(model=chat.model, input_tokens=input_tokens))


OPENAI = OpenAIDialect()
ANTHROPIC = AnthropicDialect()
Dialect = OpenAIDialect | AnthropicDialect
