"""Lenient, event-by-event conversion for input the typed decoder refuses.

A field of an unexpected type or a phase outside the Chrome format: each JSON value becomes the
record the typed decoder would have made, or ``None`` when it is malformed.

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

# Untyped decoding for the lenient path: a float too large for a double reads as infinity (and is
# then dropped by the range check) instead of failing the whole document.
_untyped = msgspec.json.Decoder(float_hook=float)


def decode_untyped(text: bytes | memoryview) -> Any:
    return _untyped.decode(text)


class _LooseArgs(msgspec.Struct):
    correlation: Any = None


class _Loose(msgspec.Struct):
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


class _LooseDevice(msgspec.Struct):
    name: Any = ""


class _LooseDist(msgspec.Struct):
    rank: Any = None


class LooseDoc(msgspec.Struct):
    """A document read loosely: its events and metadata as raw JSON."""

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
                names = [str(d.name) for d in _loose_devices.decode(self.deviceProperties)]
            except msgspec.ValidationError:
                pass
        if isinstance(self.distributedInfo, Raw):
            try:
                r = _loose_dist.decode(self.distributedInfo).rank
                rank = r if isinstance(r, int) and not isinstance(r, bool) else None
            except msgspec.ValidationError:
                pass
        return names, rank


_raw_list = msgspec.json.Decoder(list[Raw])
_loose = msgspec.json.Decoder(_Loose, float_hook=float)
_loose_args = msgspec.json.Decoder(_LooseArgs, float_hook=float)
loose_doc = msgspec.json.Decoder(LooseDoc, float_hook=float)
_loose_devices = msgspec.json.Decoder(list[_LooseDevice], float_hook=float)
_loose_dist = msgspec.json.Decoder(_LooseDist, float_hook=float)


def _loose_record(raw: Raw) -> AnyEvent | Malformed:
    """One raw event as its record; raises ``msgspec.DecodeError`` where the typed decoder would
    (invalid UTF-8 in a field tracekit reads)."""
    try:
        ev = _loose.decode(raw)
    except msgspec.ValidationError:  # not an object
        return MALFORMED
    fields = {k: v for k in ev.__struct_fields__ if (v := getattr(ev, k)) is not UNSET}
    if isinstance(ev.args, Raw):
        try:
            fields["args"] = {"correlation": _loose_args.decode(ev.args).correlation}
        except msgspec.ValidationError:
            fields["args"] = None
    return record_of(fields)


def loose_records(raws: list[Raw]) -> list[AnyEvent | Malformed]:
    return list(map(_loose_record, raws))


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
_MISSING_TS = float("nan")  # as the typed decoder reads a missing ts: dropped later by the range check


def event_from_obj(o: Any) -> AnyEvent | None:
    """Convert one decoded JSON value to the record the typed decoder would give, or ``None`` if
    it is malformed: an ``Event`` (complete span), a flow end, or ``Skipped`` (any other phase)."""
    if not isinstance(o, dict):
        return None
    ph = o.get("ph")
    if not isinstance(ph, str):
        return None
    ts = as_number(o.get("ts", _MISSING_TS))
    if ts is None or (ts != ts and "ts" in o):
        return None
    pid = _id_like(o.get("pid", 0))
    tid = _id_like(o.get("tid", 0))
    cat = o.get("cat", "")
    cat = cat if isinstance(cat, str) else ""
    pid = 0 if pid is None else pid
    tid = 0 if tid is None else tid
    if ph == "s" or ph == "f":
        flow = FlowEnd if ph == "f" else FlowStart
        return flow(cat=cat, id=_id_like(o.get("id")), pid=pid, tid=tid, ts=ts if "ts" in o else 0.0)
    if ph != "X":
        return _SKIPPED
    dur = as_number(o.get("dur", 0.0))
    if dur is None or dur != dur:
        return None
    name = o.get("name", "")
    a = o.get("args")
    args = NO_ARGS
    if isinstance(a, dict):
        args = Args(correlation=_correlation(a.get("correlation", -1)))
    return Event(
        name=name if isinstance(name, str) else str(name),
        cat=cat,
        pid=pid,
        tid=tid,
        ts=ts,
        dur=dur,
        args=args,
    )


def record_of(o: Any) -> AnyEvent | Malformed:
    """``event_from_obj``, with ``MALFORMED`` in place of None: the record keeps its event's position."""
    ev = event_from_obj(o)
    return MALFORMED if ev is None else ev


def lenient_events(text: bytes) -> list[AnyEvent | Malformed]:
    """The records of a JSON array of events (raises ``msgspec.DecodeError`` on damage)."""
    try:
        return loose_records(_raw_list.decode(text))
    except msgspec.ValidationError:  # not an array
        return []
