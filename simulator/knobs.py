"""Per-key behaviour of the simulated upstream: knob parsing, layering, and request stats.

A knob set comes from three layers, later ones winning:
server-wide defaults (command-line flags) < knobs embedded in the key < runtime knobs
set through ``PUT /_sim/keys/{name}``. The key syntax is URL-query-like:
``sim-anything?ttft_ms=200&tps=50&error_rate=0.2``; the part before ``?`` is the key's *name*
(used by the control endpoints and the stats).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl

# knob name -> kind ("float", "int", "bool", "str")
KNOB_KINDS: dict[str, str] = {
    "ttft_ms": "float",
    "tps": "float",
    "delay_ms": "float",
    "error_rate": "float",
    "seed": "int",
    "status": "int",
    "drop_after": "int",
    "keepalive": "int",
    "reject": "int",
    "tokens": "int",
    "no_usage": "bool",
    "greedy": "bool",
    "base_resp": "bool",
    "as_model": "str",
    "mask_model": "bool",
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_CACHE_LIMIT = 4096
MAX_TEXT_KNOB = 100


class KnobError(ValueError):
    """A knob name or value that the simulator does not accept."""


@dataclass(frozen=True, slots=True)
class Knobs:
    ttft_ms: float = 0.0
    tps: float = 0.0
    delay_ms: float = 0.0
    error_rate: float = 0.0
    seed: int | None = None
    status: int = 0
    drop_after: int | None = None
    keepalive: int = 0
    reject: int = 0
    tokens: int | None = None
    no_usage: bool = False
    greedy: bool = False
    base_resp: bool = False
    as_model: str = ""
    mask_model: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _coerce(name: str, value: object) -> object:
    kind = KNOB_KINDS[name]
    if kind == "str":
        if not isinstance(value, str) or len(value) > MAX_TEXT_KNOB:
            raise KnobError(f"knob {name!r} must be a text of at most {MAX_TEXT_KNOB} characters")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise KnobError(f"knob {name!r} must be a boolean, got {value!r}")
    if isinstance(value, bool):
        raise KnobError(f"knob {name!r} must be a number, got {value!r}")
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise KnobError(f"knob {name!r} must be a number, got {value!r}") from None
    if not isinstance(number, int | float) or number != number:  # NaN check
        raise KnobError(f"knob {name!r} must be a number, got {value!r}")
    if kind == "int":
        if number != int(number):
            raise KnobError(f"knob {name!r} must be an integer, got {value!r}")
        return int(number)
    return float(number)


def _check_range(name: str, value: object) -> None:
    ok = True
    if name in ("ttft_ms", "delay_ms", "tps", "keepalive", "drop_after"):
        ok = value >= 0  # type: ignore[operator]
    elif name == "error_rate":
        ok = 0.0 <= value <= 1.0  # type: ignore[operator]
    elif name == "status":
        ok = value == 0 or 400 <= value <= 599  # type: ignore[operator]
    elif name == "reject":
        ok = value in (0, 401, 402, 403)
    elif name == "tokens":
        ok = 1 <= value <= 100_000  # type: ignore[operator]
    if not ok:
        raise KnobError(f"knob {name!r} is out of range: {value!r}")


def clean_knobs(raw: Mapping[str, object]) -> dict[str, object]:
    """Validate and type knob values; ``None`` leaves a knob unset (so a lower layer shows)."""
    cleaned: dict[str, object] = {}
    for name, value in raw.items():
        if name not in KNOB_KINDS:
            raise KnobError(f"unknown knob {name!r} (known: {', '.join(KNOB_KINDS)})")
        if value is None:
            continue
        coerced = _coerce(name, value)
        _check_range(name, coerced)
        cleaned[name] = coerced
    return cleaned


def split_key(key: str) -> tuple[str, dict[str, object]]:
    """``"sim-x?ttft_ms=200&tps=50"`` -> ``("sim-x", {"ttft_ms": 200.0, "tps": 50.0})``."""
    name, sep, query = key.partition("?")
    if not sep:
        return key, {}
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    return name, clean_knobs(dict(pairs))


class KeyStats:
    """What the simulator saw for one key name (read by tests through ``GET /_sim/stats``)."""

    __slots__ = (
        "in_flight",
        "last_body",
        "last_headers",
        "last_path",
        "most_in_flight",
        "paths",
        "requests",
        "statuses",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0  # requests being answered now (a stream until its end)
        self.most_in_flight = 0  # the most at once: what a concurrency cap must bound
        self.paths: dict[str, int] = {}
        self.statuses: dict[int, int] = {}
        self.last_path = ""
        self.last_body = b""
        self.last_headers: list[tuple[bytes, bytes]] = []


class Registry:
    """Knob layers and stats, shared by every request the app serves."""

    def __init__(self, defaults: Mapping[str, object] | None = None) -> None:
        self.defaults = clean_knobs(defaults or {})
        self.runtime: dict[str, dict[str, object]] = {}
        self.stats: dict[str, KeyStats] = {}
        self.total = 0
        self._resolved: dict[str, tuple[str, Knobs]] = {}
        self._rngs: dict[str, tuple[int, random.Random]] = {}

    def resolve(self, key: str) -> tuple[str, Knobs]:
        """Return the key's name and effective knobs (cached; raises KnobError)."""
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        name, embedded = split_key(key)
        merged = {**self.defaults, **embedded, **self.runtime.get(name, {})}
        result = (name, Knobs(**merged))  # type: ignore[arg-type]
        if len(self._resolved) >= _CACHE_LIMIT:
            self._resolved.clear()
        self._resolved[key] = result
        return result

    def effective(self, name: str) -> Knobs:
        return self.resolve(name)[1]

    def set_runtime(self, name: str, raw: Mapping[str, object]) -> Knobs:
        self.runtime[name] = clean_knobs(raw)
        self._resolved.clear()
        self._rngs.pop(name, None)
        return self.effective(name)

    def delete_runtime(self, name: str) -> bool:
        existed = self.runtime.pop(name, None) is not None
        self._resolved.clear()
        self._rngs.pop(name, None)
        return existed

    def record(self, name: str, path: str, body: bytes, headers: list) -> KeyStats:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = KeyStats()
        stats.requests += 1
        stats.paths[path] = stats.paths.get(path, 0) + 1
        stats.last_path = path
        stats.last_body = body
        stats.last_headers = headers
        self.total += 1
        return stats

    def roll(self, name: str, knobs: Knobs) -> float:
        """A number in [0, 1): from a per-key seeded generator when ``seed`` is set."""
        if knobs.seed is None:
            return random.random()
        held = self._rngs.get(name)
        if held is None or held[0] != knobs.seed:
            held = self._rngs[name] = (knobs.seed, random.Random(knobs.seed))
        return held[1].random()

    def reset(self) -> None:
        self.runtime.clear()
        self.stats.clear()
        self.total = 0
        self._resolved.clear()
        self._rngs.clear()
