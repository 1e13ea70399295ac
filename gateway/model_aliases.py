"""Built-in model aliases: the names SDKs send out of the box, each mapped to a catalogue model.

One table, as data. routing.resolve_model applies it after the buyer's own profile aliases and
default model, and before the platform default (docs/gateway.md, "Model names"); a strict profile
turns it off. An alias whose target is not in the catalogue (inactive, or not added yet) is
skipped, as if it were not here. GET /v1/models lists the ones that apply.

How names map: everyday and fast/cheap chat names go to the cheap general chat model, reasoning
names (o1, o3, o4-mini, Claude Opus) to the reasoning model; embedding, speech and rerank names to
the catalogue's model of that modality (fast and small ones to the fast one).
"""

from __future__ import annotations

CHAT = "deepseek/deepseek-chat"
REASONER = "deepseek/deepseek-reasoner"
EMBEDDING = "minimax/embo-01"
SPEECH_HD = "minimax/speech-02-hd"
SPEECH_FAST = "minimax/speech-02-turbo"
RERANK = "jina/jina-reranker-v2-base-multilingual"

BUILTIN: dict[str, str] = {
    # OpenAI chat
    "gpt-4o": CHAT,
    "gpt-4o-mini": CHAT,
    "chatgpt-4o-latest": CHAT,
    "gpt-4-turbo": CHAT,
    "gpt-4": CHAT,
    "gpt-3.5-turbo": CHAT,
    "gpt-4.1": CHAT,
    "gpt-4.1-mini": CHAT,
    "gpt-4.1-nano": CHAT,
    "gpt-5": CHAT,
    "gpt-5-mini": CHAT,
    "gpt-5-nano": CHAT,
    "gpt-5-chat-latest": CHAT,
    # OpenAI reasoning
    "o1": REASONER,
    "o1-mini": REASONER,
    "o3": REASONER,
    "o3-mini": REASONER,
    "o3-pro": REASONER,
    "o4-mini": REASONER,
    # Anthropic: the peer contract's names, the current ones, and the dated/-latest forms of the
    # Anthropic SDK's examples
    "claude-sonnet-4-6": CHAT,
    "claude-sonnet-4-5": CHAT,
    "claude-sonnet-4-0": CHAT,
    "claude-sonnet-4": CHAT,
    "claude-sonnet-4-20250514": CHAT,
    "claude-sonnet-4-5-20250929": CHAT,
    "claude-3-7-sonnet-latest": CHAT,
    "claude-3-7-sonnet-20250219": CHAT,
    "claude-3-5-sonnet-latest": CHAT,
    "claude-3-5-sonnet-20241022": CHAT,
    "claude-haiku-4": CHAT,
    "claude-haiku-4-5": CHAT,
    "claude-haiku-4-5-20251001": CHAT,
    "claude-3-5-haiku-latest": CHAT,
    "claude-3-5-haiku-20241022": CHAT,
    "claude-opus-4": REASONER,
    "claude-opus-4-0": REASONER,
    "claude-opus-4-1": REASONER,
    "claude-opus-4-5": REASONER,
    "claude-opus-4-20250514": REASONER,
    "claude-opus-4-1-20250805": REASONER,
    "claude-3-opus-latest": REASONER,
    # OpenAI embeddings
    "text-embedding-3-small": EMBEDDING,
    "text-embedding-3-large": EMBEDDING,
    "text-embedding-ada-002": EMBEDDING,
    # OpenAI speech
    "tts-1": SPEECH_FAST,
    "tts-1-hd": SPEECH_HD,
    "gpt-4o-mini-tts": SPEECH_FAST,
    # Cohere and Jina rerank
    "rerank-v3.5": RERANK,
    "rerank-english-v3.0": RERANK,
    "rerank-multilingual-v3.0": RERANK,
    "rerank-english-v2.0": RERANK,
    "jina-reranker-v2-base-multilingual": RERANK,
}


def target(name: str, catalogue: dict[str, dict]) -> str | None:
    """The catalogue model the built-in alias `name` stands for, or None."""
    model_id = BUILTIN.get(name)
    return model_id if model_id in catalogue else None


def applying(catalogue: dict[str, dict]) -> list[tuple[str, str]]:
    """(alias, catalogue model id) of every built-in alias whose target is in the catalogue."""
    return [(name, model_id) for name, model_id in BUILTIN.items() if model_id in catalogue]


def platform_default(catalogue: dict[str, dict], modality: str) -> dict | None:
    """The operator's default model for `modality` (CatalogModel.platform_default), or None."""
    for entry in catalogue.values():
        if entry.get("platform_default") and entry.get("modality") == modality:
            return entry
    return None


def header(requested: str, model_id: str, source: str) -> list[tuple[bytes, bytes]]:
    """`X-DF-Model-Alias: gpt-4o -> deepseek/deepseek-chat` and how it applied
    (`X-DF-Model-Alias-Source`). The buyer's name is printable ASCII here; anything else in it
    is percent-encoded (UTF-8), so no name can break the header."""
    return [
        (b"x-df-model-alias", f"{_printable(requested)} -> {model_id}".encode("ascii")),
        (b"x-df-model-alias-source", source.encode("ascii")),
    ]


def _printable(text: str) -> str:
    return "".join(
        ch if 0x20 < ord(ch) < 0x7F and ch != "%" else "".join(f"%{b:02X}" for b in ch.encode())
        for ch in text
    )
