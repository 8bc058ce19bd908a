"""Lenient, event-by-event conversion for input the typed decoder refuses.

A field of an unexpected type, a phase outside the Chrome format, or a damaged document (read
up to the damage with ijson for ``--partial``): each JSON value becomes the record the typed
decoder would have made, or ``None`` when it is malformed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import msgspec

from tracekit.trace.gz import ERRORS as gz_errors
from tracekit.trace.model import MALFORMED, NO_ARGS, AnyEvent, Args, Event, FlowEnd, FlowStart, Malformed, Skipped


def as_number(v: Any) -> float | None:
    """A number, or a string that spells one, as a float; None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _int_or_none(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.lstrip("-").isdigit():
        return int(v)
    return None


def _id_like(v: Any) -> int | str | None:
    if isinstance(v, (int, str)) and not isinstance(v, bool):
        return v
    return None


_SKIPPED = Skipped()


def event_from_obj(o: Any) -> AnyEvent | None:
    """Convert one decoded JSON value to the record the typed decoder would give, or ``None`` if
    it is malformed: an ``Event`` (complete span), a flow end, or ``Skipped`` (any other phase)."""
    if not isinstance(o, dict):
        return None
    ph = o.get("ph")
    if not isinstance(ph, str):
        return None
    ts = as_number(o.get("ts", 0.0))
    if ts is None or ts != ts:
        return None
    pid = _id_like(o.get("pid", 0))
    tid = _id_like(o.get("tid", 0))
    cat = o.get("cat", "")
    cat = cat if isinstance(cat, str) else ""
    pid = 0 if pid is None else pid
    tid = 0 if tid is None else tid
    if ph == "s" or ph == "f":
        flow = FlowEnd if ph == "f" else FlowStart
        return flow(cat=cat, id=_id_like(o.get("id")), pid=pid, tid=tid, ts=ts)
    if ph != "X":
        return _SKIPPED
    dur = as_number(o.get("dur", 0.0))
    if dur is None or dur != dur:
        return None
    name = o.get("name", "")
    a = o.get("args")
    args = NO_ARGS
    if isinstance(a, dict):
        args = Args(correlation=_int_or_none(a.get("correlation")))
    return Event(
        name=name if isinstance(name, str) else str(name),
        cat=cat,
        pid=pid,
        tid=tid,
        ts=ts,
        dur=max(dur, 0.0),
        args=args,
    )


def record_of(o: Any) -> AnyEvent | Malformed:
    """``event_from_obj``, with ``MALFORMED`` in place of None: the record keeps its event's position."""
    ev = event_from_obj(o)
    return MALFORMED if ev is None else ev


def records(raw_events: list[Any]) -> list[AnyEvent | Malformed]:
    """One record per raw event, in order (``MALFORMED`` for the unusable ones)."""
    return list(map(record_of, raw_events))


def salvage(stream: IO[bytes], is_doc: bool) -> Iterator[AnyEvent | Malformed]:
    """Yield records from a damaged document until the damage; used by ``--partial``."""
    import ijson

    prefix = "traceEvents.item" if is_doc else "item"
    try:
        for obj in ijson.items(stream, prefix, use_float=True):
            yield record_of(obj)
    except (ijson.JSONError, ijson.IncompleteJSONError, *gz_errors):
        return


def lenient_events(text: bytes) -> list[AnyEvent | Malformed]:
    raw = msgspec.json.decode(text)
    return records(raw if isinstance(raw, list) else [])
