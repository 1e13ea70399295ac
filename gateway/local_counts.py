"""Per-process counts in fixed windows, kept while Redis fails (limits.py, client_limits.py)."""

from __future__ import annotations

from collections import OrderedDict


class LocalCounts:
    """Per-process counts in one fixed window, for while Redis fails: at most `size` names, the
    least recently used forgotten first; a new window starts every count over."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.window = 0
        self._counts: OrderedDict[str, list[int]] = OrderedDict()

    def get(self, name: str, window: int) -> list[int]:
        """The mutable counters of `name` in `window` (zeros the first time)."""
        if window != self.window:
            self._counts.clear()
            self.window = window
        counts = self._counts.pop(name, None) or [0, 0, 0, 0]
        self._counts[name] = counts
        if len(self._counts) > self.size:
            self._counts.popitem(last=False)
        return counts

    def items(self, window: int) -> list[tuple[str, list[int]]]:
        return list(self._counts.items()) if window == self.window else []

    def clear(self) -> None:
        self._counts.clear()
