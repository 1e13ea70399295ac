"""What an authenticity probe asks each modality, and the evidence it reads from the answer.

Each modality's fixed request is built and its answer read by the gateway's own upstream adapter
(gateway/upstream/), so the probe asks exactly as a served request does. The evidence is what an
honest upstream answers the same way every time, and a cheaper model cannot imitate:

- chat: the `model` named and the prompt tokens the fixed PROMPT costs (its tokenizer and chat
  template); no fingerprint, since sampled text is not reproducible.
- embedding: the `model` named (OpenAI's wire), the tokens PROMPT costs, and the vector itself.
  An embedding model maps a text to the same vector on every call (up to float noise), and no
  other model maps it near there, so the vector's length and its first EMBEDDING_HEAD components
  are kept as the fingerprint and compared by cosine (at least MIN_COSINE).
- rerank: the `model` named, the tokens counted, and the relevance scores of RERANK_DOCUMENTS
  for RERANK_QUERY: a cross-encoder scores a fixed pair the same way every time, and another
  model's scores differ by far more than RERANK_TOLERANCE.
- speech: MiniMax's T2A answer names no model and its audio is not bit-reproducible, so the
  fingerprint is what it reports of a fixed text: the characters it bills and the audio's length.
  A different engine behind the key bills or speaks differently (beyond SPEECH_TOLERANCE); a
  sibling of the same family at the same voice may speak alike, which this cannot tell apart
  (docs/health.md, "Authenticity probes").

A fingerprint is a small JSON object, stored on the catalogue model (learned from a trusted
listing) and on every check, so what was compared is on the record.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway import embeddings
from gateway.request import VOICES, SpeechRequest
from gateway.upstream import jina, minimax, openai
from gateway.upstream.base import model_named, reported_count
from gateway.upstream.client import Client
from market.models import CatalogModel, Modality

# Digits, Arabic-Indic digits, CJK, an emoji, accents, a tab and JSON: tokenizers of different
# families split these differently, so the count tells them apart. Changing it invalidates every
# catalogue fingerprint (clear them: trusted listings then record the new ones).
PROMPT = (
    'Dragonfly authenticity probe 7: 1234567890 ٣٤٥ 市场 🐉 naïve façade\t{"k": [1, 2]} '
    "Reply with one word."
)
RERANK_QUERY = "What do dragonflies eat?"
RERANK_DOCUMENTS = (
    "Dragonflies catch mosquitoes, midges and other small insects in flight.",
    "蜻蜓在飞行中捕食蚊子。",
    "The stock market closed higher on Tuesday after a quiet session.",
    "Les libellules chassent des insectes au-dessus de l'eau.",
    "1234567890 ٣٤٥ naïve façade",
    "A dragonfly larva lives under water for up to five years.",
)
SPEECH_TEXT = "Dragonfly authenticity probe 7. One, two, three, four, five."
SPEECH_VOICE = "alloy"

EMBEDDING_HEAD = 16
MIN_COSINE = 0.99
RERANK_TOLERANCE = 0.01
SPEECH_TOLERANCE = 0.10


@dataclass(frozen=True, slots=True)
class Evidence:
    model: str = ""  # the `model` the answer named, "" when it named none
    tokens: int | None = None  # the input tokens it counted, None when it said nothing
    fingerprint: dict | None = None


def _chat_body(model: CatalogModel, provider: str) -> bytes:
    return openai.chat_body(  # as the gateway calls it (the catalogue's thinking mode too)
        {"messages": [{"role": "user", "content": PROMPT}], "stream": False},
        upstream_model=model.upstream_name,
        upstream_params=model.upstream_params,
        stream=False,
        max_tokens=1,
    )


async def _chat_call(session, base_url: str, key: str, body: bytes, provider: str) -> Evidence:
    data = await openai.read_json(
        await openai.chat_open(base_url, key=key, body=body, client=session)
    )
    usage = data.get("usage")
    count = reported_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
    return Evidence(model_named(data), count)


def _embedding_request(model: CatalogModel) -> embeddings.EmbeddingsRequest:
    return embeddings.EmbeddingsRequest(
        model=model.model_id,
        inputs=[PROMPT],
        as_tokens=False,
        encoding_format="float",
        dimensions=None,
        user=None,
        input_type="document",
    )


def _embedding_body(model: CatalogModel, provider: str) -> bytes:
    return embeddings.wire(provider).body(_embedding_request(model), model.upstream_name)


async def _embedding_call(session, base_url: str, key: str, body: bytes, provider: str) -> Evidence:
    wire = embeddings.wire(provider)
    answer = await wire.read(await wire.open(base_url, key=key, body=body, client=session), count=1)
    vector = answer.vectors[0]
    head = [round(value, 6) for value in vector[:EMBEDDING_HEAD]]
    return Evidence(answer.model, answer.tokens, {"dimensions": len(vector), "head": head})


def _rerank_body(model: CatalogModel, provider: str) -> bytes:
    return jina.rerank_body(
        upstream_model=model.upstream_name,
        query=RERANK_QUERY,
        documents=list(RERANK_DOCUMENTS),
        top_n=len(RERANK_DOCUMENTS),
    )


async def _rerank_call(session, base_url: str, key: str, body: bytes, provider: str) -> Evidence:
    count = len(RERANK_DOCUMENTS)
    response = await jina.rerank_open(base_url, key=key, body=body, client=session)
    ranking = await jina.read_ranking(response, documents=count, top_n=count)
    scores = dict(ranking.results)
    return Evidence(
        ranking.model, ranking.tokens, {"scores": [round(scores[i], 6) for i in range(count)]}
    )


def _speech_body(model: CatalogModel, provider: str) -> bytes:
    request = SpeechRequest(
        model=model.model_id,
        text=SPEECH_TEXT,
        voice_id=VOICES[SPEECH_VOICE],
        speed=1.0,
        response_format="mp3",
    )
    return minimax.t2a_body(request, upstream_model=model.upstream_name)


async def _speech_call(session, base_url: str, key: str, body: bytes, provider: str) -> Evidence:
    response = await minimax.speech_open(base_url, key=key, body=body, client=session)
    speech = await minimax.speech_read(response, text=SPEECH_TEXT)
    return Evidence(fingerprint={"characters": speech.characters, "audio_ms": speech.audio_ms})


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def _embedding_gap(expected: dict, answered: dict) -> str:
    if answered.get("dimensions") != expected.get("dimensions"):
        return (
            f"the fixed text's vector has {answered.get('dimensions')} dimensions "
            f"(expected {expected.get('dimensions')}: another model)"
        )
    cosine = _cosine(answered["head"], expected["head"])
    if cosine < MIN_COSINE:
        return (
            f"the fixed text's vector points elsewhere (cosine {cosine:.2f} over its first "
            f"{len(expected['head'])} components, at least {MIN_COSINE} expected: another model)"
        )
    return ""


def _rerank_gap(expected: dict, answered: dict) -> str:
    gap = max(abs(a - e) for a, e in zip(answered["scores"], expected["scores"], strict=True))
    if gap > RERANK_TOLERANCE:
        return (
            f"the fixed ranking's scores differ by up to {gap:.3f} "
            f"(at most {RERANK_TOLERANCE} expected: another model)"
        )
    return ""


def _speech_gap(expected: dict, answered: dict) -> str:
    wrongs = []
    if answered["characters"] != expected["characters"]:
        wrongs.append(
            f"the fixed text was billed as {answered['characters']} characters "
            f"(expected {expected['characters']})"
        )
    length, usual = answered.get("audio_ms"), expected.get("audio_ms")
    if length is not None and usual and abs(length - usual) > SPEECH_TOLERANCE * usual:
        wrongs.append(
            f"the fixed text was spoken in {length} ms (expected {usual} ms ± "
            f"{SPEECH_TOLERANCE:.0%}: another voice engine)"
        )
    return "; ".join(wrongs)


@dataclass(frozen=True, slots=True)
class Ask:
    text: str  # the fixed input, recorded on each check
    body: Callable[[CatalogModel, str], bytes]  # (model, provider slug) -> the request body
    # (session, base_url, key, body, provider slug) -> what the answer showed, or UpstreamError
    call: Callable[[Client, str, str, bytes, str], Awaitable[Evidence]]
    # (expected, answered) fingerprints -> why they differ, "" when they match
    gap: Callable[[dict, dict], str] | None = None


ASKS = {
    Modality.CHAT: Ask(PROMPT, _chat_body, _chat_call),
    Modality.EMBEDDING: Ask(PROMPT, _embedding_body, _embedding_call, _embedding_gap),
    Modality.RERANK: Ask(RERANK_QUERY, _rerank_body, _rerank_call, _rerank_gap),
    Modality.SPEECH: Ask(SPEECH_TEXT, _speech_body, _speech_call, _speech_gap),
}


def fingerprint_gap(modality: str, expected: dict | None, answered: dict | None) -> str | None:
    """Why the answered fingerprint is not the expected one ("" when it is), or None when there
    is nothing to compare (either is missing, or their shapes differ: a changed probe)."""
    gap = ASKS[Modality(modality)].gap
    if gap is None or not expected or not answered or expected.keys() != answered.keys():
        return None
    try:
        return gap(expected, answered)
    except (KeyError, TypeError, ValueError):
        return None
