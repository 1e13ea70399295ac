"""How far this process's streams have got, written down so a crash bills what was delivered.

A stream that has started delivering content is, every EVERY_SECONDS, written as the settlement it
would get if it ended now (outcome client_disconnected: billed as delivered, as when the buyer hangs
up). process.py writes the rows with its lease; the reaper settles them if this process dies
(reaper.py). A stream that ends settles itself, and its row is dropped on the next write after its
settlement has landed. Only streams that outlive a write get a row: short requests cost nothing
here. What a stream delivered after its last write (under EVERY_SECONDS of tokens) goes unbilled
after a crash.
"""

from __future__ import annotations

import dataclasses

from gateway import runtime
from gateway.metering import Meter

EVERY_SECONDS = 1.0


@dataclasses.dataclass(slots=True)
class _Stream:
    key: dict
    meter: Meter
    written_units: int | None = None  # the output units of its last row written
    row: bool = False  # a row may exist (one was sent)


# The runtime's streams (request id -> a stream in flight) and streams_ended (request ids of ended
# streams that have a row).


def track(request_id: str, key: dict, meter: Meter, *, streamed: bool) -> None:
    """Keep this request's progress written down while it is served (streams only: a plain answer
    delivers nothing before its end), until `untrack` once its settlement has landed."""
    if streamed:
        runtime.current().streams[request_id] = _Stream(key, meter)


def untrack(request_id: str) -> None:
    """Its settlement has landed (or is kept for the reaper): its row, if any, can go."""
    state = runtime.current()
    stream = state.streams.pop(request_id, None)
    if stream is not None and stream.row:
        state.streams_ended.append(request_id)


def collect() -> tuple[list[tuple[str, dict]], list[str]]:
    """The rows to write ((request id, settlement fields) of each stream that delivered more since
    its last row) and the request ids whose rows to drop."""
    state = runtime.current()
    rows = []
    for request_id, stream in state.streams.items():
        meter = stream.meter
        if meter.candidate is None or meter.output_units == stream.written_units:
            continue
        settlement = meter.settlement(
            request_id, stream.key, meter.candidate, outcome="client_disconnected", streamed=True
        )
        rows.append((request_id, settlement.as_dict()))
        stream.written_units = meter.output_units
        stream.row = True
    ended, state.streams_ended = state.streams_ended, []
    return rows, ended


def unwritten(rows: list[tuple[str, dict]], ended: list[str]) -> None:
    """A write failed: those rows are written on the next turn (a stream that ended meanwhile is
    already among the ids to drop), and those ids dropped then."""
    state = runtime.current()
    for request_id, _ in rows:
        stream = state.streams.get(request_id)
        if stream is not None:
            stream.written_units = None
    state.streams_ended.extend(ended)


def write(process_id: str, rows: list[tuple[str, dict]], ended: list[str], now) -> None:
    """Apply collect()'s result (on a worker thread, in the lease's transaction)."""
    from gateway.models import StreamCheckpoint

    if rows:
        StreamCheckpoint.objects.bulk_create(
            [
                StreamCheckpoint(
                    request_id=request_id, process_id=process_id, settlement=fields, updated_at=now
                )
                for request_id, fields in rows
            ],
            update_conflicts=True,
            unique_fields=["request_id"],
            update_fields=["settlement", "updated_at"],
        )
    if ended:
        StreamCheckpoint.objects.filter(request_id__in=ended).delete()
