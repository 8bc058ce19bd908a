"""Fast, typed loading of Chrome-trace files (``.json`` / ``.json.gz``) from any torch.profiler source.

This module reads files and picks a decode path; the records it decodes go to one builder
(``build.TraceBuilder``, the columnar model) on every path:

* whole (small files): inflate (ISA-L where installed), then decode with msgspec into typed
  records that keep only the fields analysis reads; unknown fields are skipped inside the C decoder;
* chunked (more than ``CHUNKED_THRESHOLD`` bytes of JSON): the same decoder on 8 MB pieces of the
  event array, so the text is never whole in memory (see ``chunked``);
* streaming (a layout the chunked reader does not handle, past ``stream_threshold``): ijson walks
  the event array one event at a time.

A trace whose events do not fit the typed table (a phase outside the Chrome format, a field of
an unexpected type) is decoded leniently, event by event (``lenient``). Malformed input never escapes as a
traceback: each failure becomes a ``TraceFormatError`` naming the file and the problem, and
``partial=True`` salvages the events before a truncation.
"""

from __future__ import annotations

import gc
import io
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Union

import msgspec

from tracekit.errors import TraceFormatError
from tracekit.trace.build import TraceBuilder, build_trace, build_trace_batched, link_flows, needs_flows
from tracekit.trace.chunked import ChunkedReader, Damaged, Unchunkable, first_byte
from tracekit.trace.gz import ERRORS as gz_errors
from tracekit.trace.gz import MAGIC as GZIP_MAGIC
from tracekit.trace.gz import open_gz, open_gz_into, read_gz
from tracekit.trace.lenient import lenient_events, record_of, records, salvage
from tracekit.trace.model import (
    FLOWS_ONLY,
    SPANS_ONLY,
    AnyEvent,
    FlowStart,
    Malformed,
    Trace,
    TraceDoc,
)
from tracekit.trace.parallel import load_parallel, usable_cores

DEFAULT_STREAM_THRESHOLD = int(os.environ.get("TRACEKIT_STREAM_BYTES", str(768 * 1024 * 1024)))
CHUNKED_THRESHOLD = int(os.environ.get("TRACEKIT_CHUNKED_BYTES", str(32 * 1024 * 1024)))
CHUNK_SIZE = 8 * 1024 * 1024

_doc_decoder = msgspec.json.Decoder(TraceDoc)
_list_decoder = msgspec.json.Decoder(list[AnyEvent])


def load_trace(
    path: str | os.PathLike[str],
    *,
    partial: bool = False,
    stream_threshold: int | None = None,
) -> Trace:
    """Load one trace file. Raises ``TraceFormatError`` (a ``UserError``) on unusable input.

    The cyclic garbage collector is paused meanwhile: loading makes hundreds of thousands of
    objects and no cycles, and each collection would walk them all again.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        trace = _load(Path(path), partial=partial, stream_threshold=stream_threshold)
        trace.release_link_ids()
        return trace
    finally:
        if paused:
            gc.enable()


def _check_file(p: Path) -> bool:
    """Refuse what is not a readable file; say whether it is gzipped."""
    name = str(p)
    if p.is_dir():
        raise TraceFormatError(name, "is a directory, not a trace file (give a *.json or *.json.gz file)")
    if not p.exists():
        raise TraceFormatError(name, "no such file")
    with open(p, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def read_text(path: str | os.PathLike[str]) -> bytes:
    """The whole (decompressed) JSON text of a trace file, for code that rewrites the file."""
    p = Path(path)
    return _read_all(p, _check_file(p), partial=False)[0]


def decode_bytes(name: str, data: bytes) -> Trace:
    """A trace from its JSON text (as ``read_text`` gives it). Each span's ``origin`` is the
    position of its event in the document's event array."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _decode(name, data, partial=False)
    finally:
        if paused:
            gc.enable()


def _load(p: Path, *, partial: bool, stream_threshold: int | None) -> Trace:
    name = str(p)
    gz = _check_file(p)
    threshold = DEFAULT_STREAM_THRESHOLD if stream_threshold is None else stream_threshold
    size = _decompressed_size(p, gz)
    if size > CHUNKED_THRESHOLD:
        # Large traces: decode chunk by chunk, so the text is never whole in memory.
        trace = _load_chunked(p, gz, partial=partial)
        if trace is not None:
            return trace
    if size > threshold:
        return _load_streaming(p, gz, partial=partial)
    data, truncated = _read_all(p, gz, partial=partial)
    trace = _decode(name, data, partial=partial or truncated)
    trace.partial = trace.partial or truncated
    return trace


def _decompressed_size(p: Path, gz: bool) -> int:
    size = p.stat().st_size
    if not gz or size < 18:
        return size
    with open(p, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        isize = int(struct.unpack("<I", fh.read(4))[0])
    # ISIZE is the size modulo 2**32. A truncated file ends in arbitrary bytes instead: trace JSON
    # compresses 5-30x, so an ISIZE far outside that range is not trusted.
    while isize < size:
        isize += 1 << 32
    if isize > 100 * size:
        return 20 * size
    return isize


def decoded_size(path: str | os.PathLike[str]) -> int:
    """How many bytes of JSON a trace file holds, without reading it: gzip's stored size (checked as
    above), else the file's size. Planners use it to budget memory before any load."""
    p = Path(path)
    return _decompressed_size(p, _check_file(p))


def _read_all(p: Path, gz: bool, *, partial: bool) -> tuple[bytes, bool]:
    raw = p.read_bytes()
    if not raw.strip():
        raise TraceFormatError(str(p), "is empty (0 trace events); was the profiler stopped before it wrote?")
    if not gz:
        return raw, False
    try:
        return read_gz(p), False
    except gz_errors as exc:
        # Salvage the decompressible prefix; the JSON decoder then decides what is usable.
        d = zlib.decompressobj(wbits=31)
        try:
            prefix = d.decompress(raw)
        except zlib.error:
            prefix = b""
        if not partial:
            raise TraceFormatError(
                str(p),
                f"truncated or corrupt gzip ({exc.__class__.__name__}); "
                "the profiler was probably killed mid-write. Use --partial to analyze the usable prefix",
                has_prefix=bool(prefix),
            ) from None
        if not prefix:
            raise TraceFormatError(str(p), "corrupt gzip with no usable prefix") from None
        return prefix, True


def _decode(name: str, data: bytes, *, partial: bool) -> Trace:
    first = first_byte(data)
    if first not in (b"{", b"["):
        raise TraceFormatError(name, 'is not JSON (expected a Chrome trace: {"traceEvents": [...]})')
    try:
        if first == b"{":
            doc = _doc_decoder.decode(data)
            trace = build_trace(name, doc.traceEvents)
            trace.device_names = [d.name for d in doc.deviceProperties]
            trace.rank = doc.distributedInfo.rank if doc.distributedInfo else None
        else:
            trace = build_trace(name, _list_decoder.decode(data))
    except msgspec.ValidationError as exc:
        msg = str(exc)
        if "traceEvents" in msg and "missing required field" in msg.lower():
            raise TraceFormatError(name, "is JSON but not a Chrome trace (no traceEvents array)") from None
        # Some events have fields of unexpected types: decode leniently, event by event.
        trace = _decode_lenient(name, data)
    except msgspec.DecodeError as exc:
        if not partial:
            raise TraceFormatError(
                name,
                f"invalid or truncated JSON ({exc}); use --partial to analyze the events before the damage",
                has_prefix=True,
            ) from None
        trace = build_trace_batched(name, salvage(io.BytesIO(data), first == b"{"))
        trace.partial = True
    if not trace.host and not trace.device:
        raise TraceFormatError(name, "contains no usable trace events (no cpu ops, annotations or kernels)")
    return trace


def _decode_lenient(name: str, data: bytes) -> Trace:
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:  # pragma: no cover - typed decode already parsed it
        raise TraceFormatError(name, f"invalid JSON ({exc})") from None
    if isinstance(obj, dict):
        if "traceEvents" not in obj:
            raise TraceFormatError(name, "is JSON but not a Chrome trace (no traceEvents array)")
        raw_events = obj["traceEvents"]
    else:
        raw_events = obj
    if not isinstance(raw_events, list):
        raise TraceFormatError(name, "traceEvents is not a list")
    trace = build_trace(name, records(raw_events))
    if isinstance(obj, dict):
        props = obj.get("deviceProperties")
        if isinstance(props, list):
            trace.device_names = [str(d.get("name", "")) for d in props if isinstance(d, dict)]
        dist = obj.get("distributedInfo")
        if isinstance(dist, dict) and isinstance(dist.get("rank"), int):
            trace.rank = dist["rank"]
    return trace


def _open_binary(p: Path) -> IO[bytes]:
    return open(p, "rb")


_spans_decoder = msgspec.json.Decoder(list[Union[SPANS_ONLY]])  # type: ignore[valid-type]  # noqa: UP007
_flows_decoder = msgspec.json.Decoder(list[Union[FLOWS_ONLY]])  # type: ignore[valid-type]  # noqa: UP007


def _load_chunked(p: Path, gz: bool, *, partial: bool) -> Trace | None:
    """The chunked msgspec path; None when the layout is not one it handles (the caller decodes otherwise).

    With several cores the pieces are decoded and built in worker processes (``parallel``); a
    damaged file, or anything that path does not handle, is read here serially, which says exactly
    what is wrong. Flow events are skipped at first: launches link to their kernels by correlation
    id. Only when some launch or device event has no correlation id is the file read a second time
    for flows.
    """
    workers = usable_cores()
    got = load_parallel(p, gz, workers) if workers > 1 else None
    damage: str | None = None
    if got is not None:
        builder, reader = got
    else:
        builder = TraceBuilder(str(p))
        reader, damage, unchunkable = _chunked_pass(p, gz, _spans_decoder, builder.add)
        if unchunkable:
            return None
    trace = builder.finish()
    if not builder.saw_flows and needs_flows(trace):
        flows: list[Any] = []

        def keep_flows(chunk: list[Any]) -> None:
            flows.extend(f for f in chunk if isinstance(f, FlowStart) and f.cat == "ac2g")

        _chunked_pass(p, gz, _flows_decoder, keep_flows)
        link_flows(trace, flows)
    meta = reader.metadata()
    if meta is not None:
        trace.device_names = [d.name for d in meta.deviceProperties]
        trace.rank = meta.distributedInfo.rank if meta.distributedInfo else None
    return _finish(trace, None if damage is None else f"truncated or corrupt ({damage})", partial=partial)


def _chunked_pass(
    p: Path, gz: bool, decoder: msgspec.json.Decoder[Any], take: Callable[[list[Any]], None]
) -> tuple[ChunkedReader, str | None, bool]:
    """Decode the file chunk by chunk, handing each chunk to ``take``; return the reader (for the
    metadata), the damage met if any, and whether the layout defeated the chunker."""
    damage: str | None = None
    unchunkable = False
    opener: Any = open_gz_into if gz else _open_binary
    with opener(p) as fh:
        reader = ChunkedReader(fh, chunk_size=CHUNK_SIZE, lenient=lenient_events, decoder=decoder)
        try:
            for chunk in reader.events():
                take(chunk)
        except Unchunkable:
            unchunkable = True
        except Damaged as exc:
            damage = str(exc)
    return reader, damage, unchunkable


def _finish(trace: Trace, damage: str | None, *, partial: bool) -> Trace:
    """Shared end of the incremental loaders: a damaged file is an error unless --partial; an
    empty one always is."""
    if damage is not None:
        if not partial:
            raise TraceFormatError(trace.path, f"{damage}. Use --partial to analyze the usable prefix", has_prefix=True)
        trace.partial = True
    if not trace.host and not trace.device:
        raise TraceFormatError(trace.path, "contains no usable trace events (no cpu ops, annotations or kernels)")
    return trace


def _load_streaming(p: Path, gz: bool, *, partial: bool) -> Trace:
    import ijson

    name = str(p)
    opener: Any = open_gz if gz else _open_binary
    with opener(p) as fh:
        head = fh.read(4096)
    first = first_byte(head)
    if first not in (b"{", b"["):
        raise TraceFormatError(name, "is not JSON (expected a Chrome trace)")
    prefix = "traceEvents.item" if first == b"{" else "item"
    damage: str | None = None

    def events() -> Iterator[AnyEvent | Malformed]:
        nonlocal damage
        with opener(p) as fh:
            try:
                for obj in ijson.items(fh, prefix, use_float=True):
                    yield record_of(obj)
            except gz_errors as exc:
                damage = (
                    f"truncated or corrupt gzip ({exc.__class__.__name__}); the profiler was probably killed mid-write"
                )
            except (ijson.JSONError, ijson.IncompleteJSONError):
                damage = "invalid or truncated JSON"

    return _finish(build_trace_batched(name, events()), damage, partial=partial)
