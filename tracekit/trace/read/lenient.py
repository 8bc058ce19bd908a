"""Lenient, event-by-event conversion for input the typed decoder refuses.

A field of an unexpected type or a phase outside the Chrome format: each event becomes the record
the typed decoder would have made, or ``MALFORMED`` where it makes no sense (the record keeps the
event's position). ``lenient_events`` reads a JSON array of events, ``lenient_records`` events
already split out, ``lenient_doc`` a whole document.

The text is split into events as raw JSON first (``msgspec.Raw``), then each event is read with
the fields analysis needs as whatever JSON they hold and every other field skipped, exactly as
the typed decoder skips them. So the lenient path finds damage where the typed one does and
nowhere else: a syntax error anywhere, invalid UTF-8 only in a field tracekit reads.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from tracekit.trace.model import MALFORMED, NO_ARGS, AnyEvent, Args, Event, FlowEnd, FlowStart, Malformed, Skipped


class _LenientArgs(msgspec.Struct):
    correlation: Any = None


class _LenientEvent(msgspec.Struct):
    """An event's fields that analysis reads, as any JSON; the others skipped (unvalidated, as the
    typed decoder leaves them)."""

    ph: Any | UnsetType = UNSET
    name: Any | UnsetType = UNSET
    cat: Any | UnsetType = UNSET
    pid: Any | UnsetType = UNSET
    tid: Any | UnsetType = UNSET
    ts: Any | UnsetType = UNSET
    dur: Any | UnsetType = UNSET
    id: Any | UnsetType = UNSET
    args: Raw | UnsetType = UNSET


class _LenientDevice(msgspec.Struct):
    name: Any = ""


class _LenientDist(msgspec.Struct):
    rank: Any = None


class LenientDoc(msgspec.Struct):
    """A document read leniently: its events and metadata as raw JSON."""

    traceEvents: list[Raw] | UnsetType = UNSET  # noqa: N815 - Chrome trace field name
    deviceProperties: Raw | UnsetType = UNSET  # noqa: N815
    distributedInfo: Raw | UnsetType = UNSET  # noqa: N815

    def metadata(self) -> tuple[list[str], int | None]:
        """Device names and rank, as far as they make sense (``DecodeError`` where the typed
        decoder would raise one)."""
        names: list[str] = []
        rank = None
        if isinstance(self.deviceProperties, Raw):
            try:
                names = [str(d.name) for d in _devices.decode(self.deviceProperties)]
            except msgspec.ValidationError:
                pass
        if isinstance(self.distributedInfo, Raw):
            try:
                r = _dist.decode(self.distributedInfo).rank
                rank = r if isinstance(r, int) and not isinstance(r, bool) else None
            except msgspec.ValidationError:
                pass
        return names, rank


_raw_list = msgspec.json.Decoder(list[Raw])
_event = msgspec.json.Decoder(_LenientEvent, float_hook=float)
_args = msgspec.json.Decoder(_LenientArgs, float_hook=float)
lenient_doc = msgspec.json.Decoder(LenientDoc, float_hook=float)
_devices = msgspec.json.Decoder(list[_LenientDevice], float_hook=float)
_dist = msgspec.json.Decoder(_LenientDist, float_hook=float)


def lenient_events(text: bytes) -> list[AnyEvent | Malformed]:
    """The records of a JSON array of events (raises ``msgspec.DecodeError`` on damage)."""
    try:
        return lenient_records(_raw_list.decode(text))
    except msgspec.ValidationError:  # not an array
        return []


def lenient_records(raws: list[Raw]) -> list[AnyEvent | Malformed]:
    """Each raw event as its record (``_record``)."""
    return list(map(_record, raws))


def as_number(v: Any) -> float | None:
    """A number, or a string that spells one, as a float; None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        try:
            return float(v)
        except OverflowError:  # an integer literal too large for a double
            return None
    if isinstance(v, str):
        try:
            return float(v)
        except (ValueError, OverflowError):
            return None
    return None


def _correlation(v: Any) -> int | str | None:
    """A correlation id as the typed decoder reads it (an integer, or a string, which the builder
    reads as its integer where it spells one and codes otherwise); a whole float as its integer;
    anything else is no id."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return _id_like(v)


def _id_like(v: Any) -> int | str | None:
    if isinstance(v, (int, str)) and not isinstance(v, bool):
        return v
    return None


_SKIPPED = Skipped()


def _record(raw: Raw) -> AnyEvent | Malformed:
    """One raw event as the record the typed decoder would make: an ``Event`` (complete span), a
    flow start or end, ``Skipped`` (any other phase), or ``MALFORMED`` where the fields analysis
    reads make no sense. Raises ``msgspec.DecodeError`` where the typed decoder would (invalid
    UTF-8 in a field tracekit reads)."""
    try:
        ev = _event.decode(raw)
    except msgspec.ValidationError:  # not an object
        return MALFORMED
    args = NO_ARGS
    if isinstance(ev.args, Raw):  # decoded first: its damage counts whatever the event's phase
        try:
            args = Args(correlation=_correlation(_args.decode(ev.args).correlation))
        except msgspec.ValidationError:  # args that are not an object
            pass
    if not isinstance(ev.ph, str):
        return MALFORMED
    # A missing ts reads as NaN, as the typed decoder reads it: the range check drops the span later.
    has_ts = ev.ts is not UNSET
    ts = as_number(ev.ts) if has_ts else float("nan")
    if ts is None or (ts != ts and has_ts):
        return MALFORMED
    pid, tid = _id_like(ev.pid), _id_like(ev.tid)
    pid = 0 if pid is None else pid
    tid = 0 if tid is None else tid
    cat = ev.cat if isinstance(ev.cat, str) else ""
    if ev.ph == "s" or ev.ph == "f":
        flow = FlowEnd if ev.ph == "f" else FlowStart
        return flow(cat=cat, id=_id_like(ev.id), pid=pid, tid=tid, ts=ts if has_ts else 0.0)
    if ev.ph != "X":
        return _SKIPPED
    dur = as_number(ev.dur) if ev.dur is not UNSET else 0.0
    if dur is None or dur != dur:
        return MALFORMED
    name = "" if ev.name is UNSET else ev.name if isinstance(ev.name, str) else str(ev.name)
    return Event(name=name, cat=cat, pid=pid, tid=tid, ts=ts, dur=dur, args=args)
