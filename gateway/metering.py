"""Counting units: the bounds a hold must cover, the prompt estimate, delivered tokens, and the
Meter that carries one request's count from its sizing to its settlement.

A hold is an upper bound the upstream cannot exceed (docs/billing-policy.md, "Hold sizing"):
- the prompt is bounded by the bytes of the body's JSON: a byte-level tokenizer's tokens each
  cover at least one UTF-8 byte, so no script (CJK, emoji, digits) can take more, and every token a
  provider puts in the prompt (messages, tool definitions, a response schema, the chat template's
  markers) comes from that JSON, whose braces, quotes and keys outweigh the template's markers;
- the output is bounded by the cap sent upstream as `max_tokens` on every request (the buyer's, or
  DEFAULT_OUTPUT_CAP when they set none, at most the model's context), times `n` choices.
Content parts a model cannot take (images without the "vision" capability, audio, files) are
refused before anything is held.
Embeddings have no output: the prompt alone is held, each input bounded like a prompt (a string by
its UTF-8 bytes, a token array by its length) plus EMBEDDING_INPUT_TOKENS for the markers a
tokenizer may add around one input (BOS/EOS, CLS/SEP).

The estimate (4 characters per token, the simulator's and a common rough rule) only bills a prompt
whose upstream reported no usage and sizes the tokens/min pre-check. When the upstream reports no
usage, a stream is billed one token per content-carrying chunk delivered to the buyer
(OpenAI-compatible providers stream about one token per chunk), a plain response 4 characters per
token of its text (docs/gateway.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from billing.money import cost_nusd
from billing.pricing import price, sla_breached
from billing.settlement_data import Settlement
from gateway.errors import bad_request
from gateway.route_trace import RouteTrace

if TYPE_CHECKING:
    from gateway.embeddings import EmbeddingsRequest
    from gateway.request import ChatRequest, SpeechRequest
    from market.route_candidates import RouteCandidate

# Output tokens per choice a request may produce when it sets no max_tokens (sent upstream).
DEFAULT_OUTPUT_CAP = 8192
# Tokens a chat template adds once per conversation (the assistant's opening marker and the like).
TEMPLATE_TOKENS = 16
# The most tokens a provider counts for one image (a vision model's largest tiling, with margin).
IMAGE_TOKENS = 16_384
# Tokens an embedding tokenizer may add around one input (BOS/EOS, CLS/SEP), with room to spare.
EMBEDDING_INPUT_TOKENS = 4
# Content part types beyond text, and the capability a model needs to take them.
_PART_CAPABILITY = {"image_url": "vision"}


def tokens_from_chars(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def prompt_token_bound(payload: dict, capabilities: list[str] | tuple[str, ...]) -> int:
    """The most prompt tokens any provider can count for this (validated) chat body, or a 400 for
    a content part the model cannot take."""
    images = 0
    for index, message in enumerate(payload["messages"]):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part_index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                continue
            needed = _PART_CAPABILITY.get(kind) if isinstance(kind, str) else None
            if needed is None or needed not in capabilities:
                raise bad_request(
                    f"'messages[{index}].content[{part_index}]' is a {kind!r} part, which this "
                    "model does not take: send text parts only (GET /v1/models lists each "
                    "model's capabilities)."
                )
            images += 1
    return len(orjson.dumps(payload)) + TEMPLATE_TOKENS + images * IMAGE_TOKENS


def choices(payload: dict) -> int:
    """How many answers the body asks for (`n`, validated by gateway.request)."""
    n = payload.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def output_cap(max_tokens: int | None, context_tokens: int | None) -> int:
    """Output tokens per choice: sent upstream as max_tokens, so the upstream cannot exceed it."""
    cap = max_tokens if max_tokens is not None else DEFAULT_OUTPUT_CAP
    if context_tokens:
        cap = min(cap, context_tokens)
    return cap


def speech_character_bound(text: str) -> int:
    """The most characters a speech provider bills for `text`: its UTF-8 bytes (MiniMax counts a
    character outside ASCII, a Chinese one say, as two; each takes at least two bytes)."""
    return len(text.encode())


def worst_case_nusd(
    *, prompt_tokens: int, output_tokens: int, ask_input_nusd: int, ask_output_nusd: int
) -> int:
    return cost_nusd(units=prompt_tokens, price_per_million_nusd=ask_input_nusd) + cost_nusd(
        units=output_tokens, price_per_million_nusd=ask_output_nusd
    )


def candidate_worst_case_nusd(
    candidate: RouteCandidate, meter: Meter, *, output_tokens: int | None = None
) -> int:
    """The most `candidate` can charge for this request: the prompt's bound and the output
    allowance (or `output_tokens`, what X-Max-Cost tries) at its asks. The hold's rule."""
    return worst_case_nusd(
        prompt_tokens=meter.prompt_bound,
        output_tokens=meter.output_allowance if output_tokens is None else output_tokens,
        ask_input_nusd=candidate.ask_input_nusd,
        ask_output_nusd=candidate.ask_output_nusd,
    )


def message_chars(message: dict) -> int:
    """Characters of an assistant message's text and tool-call arguments (plain responses)."""
    chars = 0
    content = message.get("content")
    if isinstance(content, str):
        chars += len(content)
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            chars += len(function.get("name") or "") + len(function.get("arguments") or "")
    return chars


def chunk_carries_content(chunk: dict) -> bool:
    """A stream chunk that delivers text or tool-call pieces (what the buyer pays for)."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"):
            return True
    return False


@dataclass(slots=True)
class Meter:
    """What one request may use (its sizing) and what it used, from routing to settlement.

    Each field has one writer:
    - `started`, `prompt_estimate`, `prompt_bound`, `output_cap`, `output_allowance`,
      `output_cap_from_buyer`: the size step (`chat_meter` / `speech_meter` / `embeddings_meter`, once the
      catalogue model is known); never changed after, but for one explicit step: X-Max-Cost may lower
      `output_cap` and `output_allowance` (`fit_output_cap`, trade.rank) before the hold is asked
      for and before anything is sent, so the hold and the upstream's max_tokens still agree;
    - `attempt_started` and the attempt's delivery (`accepted`, `first_content_at`,
      `content_chunks`, `prompt_tokens`, `completion_tokens`, `finished`): the serve step
      (proxy.py, relay.py) through this class's methods, each field by one of them; a new attempt
      (`attempt_start`) forgets what a failed one delivered, so only the listing that serves counts;
    - `candidate`: the commit (`Call.commit`, gateway/call.py), when a listing serves;
    - `outcome`: `cut()`, when the committed listing failed mid-stream (relay.py);
    - `trace`: the model name sent and how it resolved (trade.run), the listings passed over
      (proxy.failover); settlement() stores it as the record's route (route_trace.py).
    - `cover_nusd`, `lease_id`: `cover()`, the hold placed and the balance lease it was drawn
      from, copied in by the serve step (proxy.failover).
    Settlement reads it (`settlement()`), the rate limits read `units_used`, checkpoints read it
    while a stream runs.
    """

    started: float = field(default_factory=time.monotonic)
    prompt_estimate: int = 0  # what the prompt is billed as when the upstream reports no usage
    prompt_bound: int = 0  # the most the upstream can count for the prompt (the hold covers it)
    output_cap: int = 0  # max_tokens sent upstream, per choice (speech, embeddings: none)
    output_allowance: int = 0  # the most output the upstream may write (speech, embeddings: none)
    output_cap_from_buyer: bool = False  # the buyer set output_cap (max_tokens): never lowered
    candidate: RouteCandidate | None = None  # the listing that served (set at commit)
    accepted: RouteCandidate | None = None  # the listing whose upstream has the request (its head)
    attempt_started: float = 0.0
    first_content_at: float | None = None
    content_chunks: int = 0
    prompt_tokens: int | None = None  # from upstream usage
    completion_tokens: int | None = None
    finished: bool = False  # the upstream said finish_reason (or the plain response arrived)
    outcome: str = "completed"
    trace: RouteTrace = field(default_factory=RouteTrace)
    cover_nusd: int = 0  # the hold placed: the most the buyer's debit can be (billing policy 6)
    lease_id: str | None = None  # the balance lease the hold was drawn from (its settlement's)
    sla_max_ttft_ms: int | None = None  # the hard TTFT promise served under (the SLA refund)

    def fit_output_cap(self, cap: int) -> None:
        """X-Max-Cost's step (max_cost.fit via trade.rank, before the hold): a lower output cap per
        choice, for a request whose buyer set none, so its worst case fits the max."""
        if not 0 < cap <= self.output_cap or self.output_cap_from_buyer:
            raise ValueError("only a cap the buyer did not set can be lowered, and only lowered")
        choices = self.output_allowance // self.output_cap
        self.output_cap = cap
        self.output_allowance = cap * choices

    def promise_ttft(self, hard_max_ttft_ms: float | None) -> None:
        """The request's hard TTFT, whole milliseconds rounded up (never stricter than asked)."""
        self.sla_max_ttft_ms = None if hard_max_ttft_ms is None else math.ceil(hard_max_ttft_ms)

    def attempt_start(self) -> None:
        """A new listing is tried: what a failed one delivered to us (never to the buyer) is
        forgotten, so only the listing that serves is metered."""
        self.attempt_started = time.monotonic()
        self._forget()

    def attempt_failed(self) -> None:
        """The listing tried did not serve: nothing of it is billed, not even an accepted prompt."""
        self._forget()

    def _forget(self) -> None:
        self.accepted = None
        self.first_content_at = None
        self.content_chunks = 0
        self.prompt_tokens = self.completion_tokens = None
        self.finished = False

    def accept(self, candidate: RouteCandidate) -> None:
        """Its upstream has the request: its provider bills the prompt from here (billing policy 4)."""
        self.accepted = candidate

    def first_content(self) -> None:
        """The first content arrived (a plain call's: its response head): TTFT ends here."""
        self.first_content_at = time.monotonic()

    def content(self) -> None:
        """One chunk that delivers content (billed one token each when usage is missing)."""
        self.content_chunks += 1

    def usage(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """What the upstream counted."""
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens

    def finish(self) -> None:
        """The upstream said the answer is complete."""
        self.finished = True

    def cut(self) -> None:
        """The serving listing failed after content reached the buyer."""
        self.outcome = "upstream_failed"

    def cover(self, held_nusd: int, lease_id: str | None = None) -> None:
        """The hold this request serves under (what settlement caps the buyer's debit at), and the
        balance lease it was drawn from."""
        self.cover_nusd, self.lease_id = held_nusd, lease_id

    def debit_nusd(self) -> int:
        """What the buyer is debited when this request settles as metered so far: the figure an
        answer carries as `usage.cost` / X-DF-Cost (docs/gateway.md, "Cost of an answer").
        billing.pricing.price of the units `settlement()` reports at the serving listing's asks,
        with the hold as cover, exactly as the settlement prices them; the fee does not enter the
        buyer's debit. 0 before a listing served."""
        candidate = self.candidate
        if candidate is None:
            return 0
        return price(
            outcome=self.outcome,
            input_units=self.prompt_tokens_billed,
            output_units=self.output_units,
            ask_input_nusd=candidate.ask_input_nusd,
            ask_output_nusd=candidate.ask_output_nusd,
            fee_bps=0,
            coverable_nusd=self.cover_nusd,
            sla_breached=sla_breached(
                sla_max_ttft_ms=self.sla_max_ttft_ms,
                ttft_ms=self.ttft_ms,
                duration_ms=self.duration_ms,
            ),
        ).buyer_debit_nusd

    @property
    def units_estimate(self) -> int:
        """What the tokens/min pre-check counts before anything is served."""
        return self.prompt_estimate + self.output_allowance

    @property
    def ttft_ms(self) -> int | None:
        if self.first_content_at is None:
            return None
        return int((self.first_content_at - self.attempt_started) * 1000)

    @property
    def units_used(self) -> int:
        """What counts against tokens/min: nothing unless a listing served."""
        if self.candidate is None:
            return 0
        return self.prompt_tokens_billed + self.output_units

    @property
    def prompt_tokens_billed(self) -> int:
        """Billed input: the upstream's count, else the estimate."""
        return self.prompt_tokens if self.prompt_tokens is not None else self.prompt_estimate

    @property
    def output_units(self) -> int:
        """Billed output: the upstream's count, else one token per content chunk delivered."""
        if self.completion_tokens is not None:
            return self.completion_tokens
        return self.content_chunks

    @property
    def duration_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def settlement(
        self, request_id: str, key: dict, candidate: RouteCandidate, *, outcome: str, streamed: bool
    ) -> Settlement:
        """What billing is told: this meter's units at `candidate`'s asks."""
        return Settlement(
            request_id=request_id,
            buyer_id=key["user_id"],
            access_key_id=key["key_id"],
            listing_id=candidate.listing_id,
            seller_id=candidate.seller_id,
            model_id=candidate.model_id,
            upstream_model=candidate.upstream_model,
            price_unit=candidate.price_unit,
            ask_input_nusd=candidate.ask_input_nusd,
            ask_output_nusd=candidate.ask_output_nusd,
            input_units=self.prompt_tokens_billed,
            output_units=self.output_units,
            ttft_ms=self.ttft_ms,
            duration_ms=self.duration_ms,
            streamed=streamed,
            outcome=outcome,
            route=self.trace.as_route(candidate),
            sla_max_ttft_ms=self.sla_max_ttft_ms,
            lease_id=self.lease_id,
        )


def chat_meter(chat: ChatRequest, model: dict) -> Meter:
    """A chat request's sizing: the prompt's estimate and bound, the output cap sent upstream and
    the output it allows over every choice (a 400 for a content part the model cannot take)."""
    cap = output_cap(chat.max_tokens, model["context_tokens"])
    return Meter(
        prompt_estimate=tokens_from_chars(chat.prompt_chars),
        prompt_bound=prompt_token_bound(chat.payload, model["capabilities"]),
        output_cap=cap,
        output_allowance=cap * choices(chat.payload),
        output_cap_from_buyer=chat.max_tokens is not None,
    )


def speech_meter(speech: SpeechRequest, model: dict) -> Meter:
    """A speech request's sizing: its characters, and the most the provider may bill for them."""
    return Meter(prompt_estimate=len(speech.text), prompt_bound=speech_character_bound(speech.text))


def embeddings_meter(embeddings: EmbeddingsRequest) -> Meter:
    """An embeddings request's sizing: no output; its inputs' estimate (4 characters per token,
    a token array its length) and the most any upstream can count for them (UTF-8 bytes, or the
    array's length, plus the markers around each input)."""
    inputs = embeddings.inputs
    if embeddings.as_tokens:
        estimate = bound = sum(len(ids) for ids in inputs)
    else:
        estimate = sum(tokens_from_chars(len(text)) for text in inputs)
        bound = sum(len(text.encode()) for text in inputs)
    return Meter(
        prompt_estimate=estimate, prompt_bound=bound + EMBEDDING_INPUT_TOKENS * len(inputs)
    )
