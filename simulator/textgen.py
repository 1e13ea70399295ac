"""Deterministic text, token counts and tool arguments for the simulated upstream.

Rules (documented in docs/simulator.md):
- prompt tokens = ceil(characters of all message text / 4), at least 1;
- the reply is a sequence of words picked from WORDS by a generator seeded with a hash of
  the model and the messages; each word is one completion token (one stream chunk).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import orjson

_WORD_TEXT = """
    able about above across after again air all almost along also always among animal answer
    area around ask away back base be became because become been before began begin being
    below best better between big black blue boat body book both bright bring build busy call
    calm came can care carry case cause center change check city clear close cloud cold come
    common complete could course cover create cross current dark day deep did different direct
    does done door down draw dream drive during each early earth easy edge either end enough
    even ever every example face fact fall family far fast feel field final find fine fire
    first follow food form found free fresh friend from full garden gather general give glass
    good great green ground group grow half hand happy hard have head hear heart heavy help
    here high hold home hope hour idea important inside island just keep kind know land large
    last late learn leave left light line list little live long look made make many mark may
    measure middle might mind minute moment more morning most mountain move much music must
    name near need never new next night north note nothing notice number ocean offer often
    open order other over paper part pattern people picture piece place plain plan point
    power present quick quiet rain reach ready real reason record remember rest river road
    rock round rule safe same sea second see seem sense set shape share short show side
    signal simple since small smooth some sound south space speak special spring stand star
    start state still stone story street strong study such summer sun sure surface system
    table take tell than their then there thing think those though through time today
    together toward travel tree true turn under until upon useful usual valley very voice
    wait walk warm watch water wave way weather week well west while whole wide wind window
    winter with within without wonder word work world write year young
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
_N_WORDS = len(WORDS)
_MASK64 = 0xFFFFFFFFFFFFFFFF
_LCG_A = 6364136223846793005
_LCG_C = 1442695040888963407


def seed_of(*parts: object) -> int:
    """A 64-bit seed from JSON-serialisable parts (model, messages, ...)."""
    digest = hashlib.blake2b(orjson.dumps(parts), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def default_length(seed: int) -> int:
    """Default reply length: 12..24 tokens, fixed for a given request."""
    return 12 + seed % 13


@lru_cache(maxsize=4096)
def word_pieces(seed: int, count: int) -> tuple[str, ...]:
    """``count`` stream pieces: 'Word', ' word', ..., ' word.' (the last one ends a sentence)."""
    pieces: list[str] = []
    x = seed
    for i in range(count):
        x = (x * _LCG_A + _LCG_C) & _MASK64
        word = WORDS[(x >> 33) % _N_WORDS]
        pieces.append(word.capitalize() if i == 0 else " " + word)
    if pieces:
        pieces[-1] += "."
    return tuple(pieces)


def text_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def content_text(content: object) -> str:
    """The text of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def prompt_tokens(messages: list[dict]) -> int:
    chars = 0
    for message in messages:
        content = message.get("content")
        chars += len(content) if isinstance(content, str) else len(content_text(content))
    return max(1, (chars + 3) // 4)


# What a greedy upstream writes when the request sets no output cap: a reasoning model's long think.
GREEDY_UNCAPPED_TOKENS = 32_768
# Chat-template tokens a greedy upstream counts per message (role markers, separators).
GREEDY_TOKENS_PER_MESSAGE = 8


def _strings(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def greedy_prompt_tokens(req: dict) -> int:
    """The most a provider could count: one token per UTF-8 byte of every string (keys included)
    in the messages and tool definitions, plus the chat template's markers per message."""
    messages = req.get("messages") or []
    text = sum(len(s.encode()) for s in _strings([messages, req.get("tools") or []]))
    return text + GREEDY_TOKENS_PER_MESSAGE * (len(messages) + 1)


def split_pieces(text: str, size: int = 4) -> list[str]:
    """Cut ``text`` into pieces of ``size`` characters (tool-call arguments are streamed so)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def space_pieces(text: str) -> list[str]:
    """Cut ``text`` at spaces, keeping them, so that ``"".join(pieces) == text``."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def _sample(schema: object, seed: int) -> object:
    if not isinstance(schema, dict):
        return WORDS[seed % _N_WORDS]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[seed % len(enum)]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return seed % 100
    if kind == "number":
        return (seed % 1000) / 10
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "array":
        return [_sample(schema.get("items"), seed >> 3)]
    if kind == "object":
        return _object_sample(schema, seed >> 3)
    return WORDS[seed % _N_WORDS]


def _object_sample(schema: dict, seed: int) -> dict:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    required = schema.get("required")
    names = [n for n in required if n in props] if isinstance(required, list) else list(props)
    out = {}
    x = seed
    for name in names:
        x = (x * _LCG_A + _LCG_C) & _MASK64
        out[name] = _sample(props[name], x >> 16)
    return out


def tool_arguments(parameters: object, seed: int) -> str:
    """JSON arguments fitting a function's JSON-schema ``parameters`` (required ones, or all)."""
    args = _object_sample(parameters, seed) if isinstance(parameters, dict) else {}
    return orjson.dumps(args).decode()


def tool_call_id(seed: int, name: str) -> str:
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=12).hexdigest()
    return "call_" + digest
