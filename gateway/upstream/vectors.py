"""What an embeddings upstream answered, checked the same way whatever its wire format: one
vector per input, in input order, of finite numbers, all of one length."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

from gateway.upstream.base import UpstreamError, reported_count


@dataclass(frozen=True, slots=True)
class Embedded:
    vectors: list[array]  # one per input, in input order (array of doubles)
    tokens: int | None  # the input tokens the upstream counted, None when it said nothing
    model: str = ""  # the model the answer named ("" when the wire format names none)


def embedded(raw: object, *, count: int, tokens: object, model: str = "") -> Embedded:
    """`raw` as `count` vectors (UpstreamError if it is not exactly that), `tokens` if it is a
    non-negative integer."""
    if not isinstance(raw, list) or len(raw) != count:
        raise UpstreamError("response did not carry one vector per input")
    vectors = []
    for vector in raw:
        if not isinstance(vector, list):
            raise UpstreamError("response carried a vector that is not an array")
        try:
            values = array("d", vector)
        except (TypeError, ValueError, OverflowError):
            raise UpstreamError("response carried a vector that is not numbers") from None
        if not values or not all(map(math.isfinite, values)):
            raise UpstreamError("response carried an empty or non-finite vector")
        vectors.append(values)
    if len({len(v) for v in vectors}) > 1:
        raise UpstreamError("response carried vectors of different lengths")
    return Embedded(vectors, reported_count(tokens), model)
