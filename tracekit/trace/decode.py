"""Decoding a trace's whole JSON text (a small file, or one read whole): typed first, then event by
event where the typed table does not fit, salvaging the events before damage for ``--partial``.
``load`` reads files and picks between this and the chunked reader."""

from __future__ import annotations

import io

import msgspec
from msgspec import UnsetType

from tracekit.errors import TraceFormatError
from tracekit.trace import policy
from tracekit.trace.build import TraceBuilder, build_trace
from tracekit.trace.chunked import ChunkedReader, Damaged, NoEventArray
from tracekit.trace.lenient import lenient_events, loose_doc, loose_records
from tracekit.trace.model import AnyEvent, Trace, TraceDoc
from tracekit.trace.policy import BOM, TooDeep
from tracekit.trace.scan import first_byte

_doc_decoder = msgspec.json.Decoder(TraceDoc)
lenient_list = msgspec.json.Decoder(list[msgspec.Raw])
_list_decoder = msgspec.json.Decoder(list[AnyEvent])


def decode_text(name: str, data: bytes, *, partial: bool, chunk_size: int) -> Trace:
    """A trace from the whole JSON text of a file; with ``partial``, the events before any damage
    (found by the chunked reader in pieces of ``chunk_size``, as on the chunked path)."""
    text: bytes | memoryview = memoryview(data)[3:] if data[:3] == BOM else data
    first = first_byte(data)
    if first not in (b"{", b"["):
        raise policy.not_json(name, bytes(data[:64]))
    damage: msgspec.DecodeError | None = None
    try:
        try:
            trace = _decode_typed(name, text, first)
        except msgspec.ValidationError as exc:
            _refuse_layout(name, str(exc))
            # Some events have fields of unexpected types: decode leniently, event by event.
            trace = _decode_lenient(name, text)
    except msgspec.DecodeError as exc:
        damage = exc
    except RecursionError:
        raise policy.too_deep(name) from None
    if damage is not None:
        if not partial:
            raise policy.damaged(name, str(damage))
        # The events before the damage, as the chunked reader finds them on every path.
        builder = TraceBuilder(name)
        try:
            for chunk in ChunkedReader(io.BytesIO(text), chunk_size=chunk_size, lenient=lenient_events).events():
                builder.add(chunk)
        except (Damaged, NoEventArray):
            pass
        except TooDeep:
            raise policy.too_deep(name) from None
        trace = builder.finish()
        trace.partial = True
    return usable(trace)


def _decode_typed(name: str, text: bytes | memoryview, first: bytes) -> Trace:
    if first == b"{":
        doc = _doc_decoder.decode(text)
        trace = build_trace(name, doc.traceEvents)
        trace.device_names = [d.name for d in doc.deviceProperties]
        trace.rank = doc.distributedInfo.rank if doc.distributedInfo else None
        return trace
    return build_trace(name, _list_decoder.decode(text))


def _refuse_layout(name: str, msg: str) -> None:
    """A typed-decode failure that no event-by-event decode can fix: the document's shape."""
    if "missing required field `traceEvents`" in msg:
        raise TraceFormatError(name, "is JSON but not a Chrome trace (no traceEvents array)")
    if msg.endswith("- at `$.traceEvents`") or msg.endswith("- at `$`"):
        raise TraceFormatError(name, "is JSON but not a Chrome trace (traceEvents is not a list of events)")


def _decode_lenient(name: str, text: bytes | memoryview) -> Trace:
    try:
        doc = loose_doc.decode(text)
    except msgspec.ValidationError as exc:
        if not str(exc).startswith("Expected `object`"):
            raise TraceFormatError(
                name, "is JSON but not a Chrome trace (traceEvents is not a list of events)"
            ) from None
        return build_trace(name, loose_records(lenient_list.decode(text)))
    if isinstance(doc.traceEvents, UnsetType):
        raise TraceFormatError(name, "is JSON but not a Chrome trace (no traceEvents array)")
    names, rank = doc.metadata()
    trace = build_trace(name, loose_records(doc.traceEvents))
    trace.device_names, trace.rank = names, rank
    return trace


def usable(trace: Trace) -> Trace:
    """The trace, unless it holds nothing to analyze (then one line saying what was skipped)."""
    if not trace.host and not trace.device:
        dropped = [f"{trace.skipped_events} malformed events"] if trace.skipped_events else []
        dropped += [f"{trace.out_of_range} events with times out of range"] if trace.out_of_range else []
        why = f" (skipped {' and '.join(dropped)})" if dropped else ""
        raise TraceFormatError(trace.path, f"contains no usable trace events (no cpu ops, annotations or kernels){why}")
    return trace
