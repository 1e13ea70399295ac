"""Prompt-token counts per model family: what a tokenizer fingerprint looks like in the simulator.

Real providers count the same text differently per model family (each has its own tokenizer and
chat template), so the `prompt_tokens` a fixed string costs tells families apart; Dragonfly's
authenticity probes (market/authenticity.py) rely on it. The simulator's own models (deepseek-*,
MiniMax-*, and any name no family below claims) keep the documented rule, ceil(characters / 4);
the families below are the cheaper models a substituting seller would serve instead (the
`as_model` knob), each counting its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.textgen import content_text, text_tokens
from simulator.textgen import prompt_tokens as default_prompt_tokens


@dataclass(frozen=True, slots=True)
class Tokenizer:
    unit: str  # "chars" or "bytes" (UTF-8)
    divisor: int
    per_message: int  # chat-template tokens per message

    def count(self, messages: list[dict]) -> int:
        texts = [content_text(m.get("content")) for m in messages]
        return max(1, -(-self._size(texts) // self.divisor) + self.per_message * len(messages))

    def count_text(self, text: str) -> int:
        """One bare text (an embedding's or a ranking's input: no chat template)."""
        return max(1, -(-self._size([text]) // self.divisor))

    def _size(self, texts: list[str]) -> int:
        return sum(len(t.encode()) if self.unit == "bytes" else len(t) for t in texts)


# name prefix (case-folded) -> its tokenizer; the first prefix that matches wins.
FAMILIES: tuple[tuple[str, Tokenizer], ...] = (
    ("qwen", Tokenizer("bytes", 3, 5)),
    ("llama", Tokenizer("chars", 3, 4)),
)


def family_tokenizer(model: str) -> Tokenizer | None:
    folded = model.casefold()
    return next((t for prefix, t in FAMILIES if folded.startswith(prefix)), None)


def model_prompt_tokens(model: str, messages: list[dict]) -> int:
    """The prompt tokens `model` counts for `messages` (the default rule unless a family claims it)."""
    tokenizer = family_tokenizer(model)
    return default_prompt_tokens(messages) if tokenizer is None else tokenizer.count(messages)


def model_text_tokens(model: str, text: str) -> int:
    """The tokens `model` counts for one bare text (the default rule unless a family claims it)."""
    tokenizer = family_tokenizer(model)
    return text_tokens(text) if tokenizer is None else tokenizer.count_text(text)
