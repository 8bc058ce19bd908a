"""Fast, typed loading of Chrome-trace files (``.json`` / ``.json.gz``) from any torch.profiler source.

Two paths share one builder:

* in memory (the common case): gunzip, then decode with msgspec into typed ``Event`` structs that
  keep only the fields analysis reads; unknown fields are skipped inside the C decoder;
* streaming (files whose decompressed size passes ``stream_threshold``): ijson walks the event
  array one event at a time, so peak memory follows the kept events, not the size of the JSON text.

Malformed input never escapes as a traceback: each failure becomes a ``TraceFormatError`` naming
the file and the problem, and ``partial=True`` salvages the events before a truncation.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import IO, Any

import msgspec

from tracekit.errors import TraceFormatError
from tracekit.trace.chunked import ChunkedReader, Damaged, Unchunkable
from tracekit.trace.model import (
    DEVICE_CATS,
    GPU_ANNOTATION_CAT,
    HOST_CATS,
    PYTHON_SCOPE_PATTERN,
    RUNTIME_CATS,
    Args,
    Event,
    Trace,
    TraceDoc,
)

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_STREAM_THRESHOLD = int(os.environ.get("TRACEKIT_STREAM_BYTES", str(768 * 1024 * 1024)))
CHUNKED_THRESHOLD = int(os.environ.get("TRACEKIT_CHUNKED_BYTES", str(32 * 1024 * 1024)))
CHUNK_SIZE = 8 * 1024 * 1024

_doc_decoder = msgspec.json.Decoder(TraceDoc)
_list_decoder = msgspec.json.Decoder(list[Event])


def load_trace(
    path: str | os.PathLike[str],
    *,
    partial: bool = False,
    stream_threshold: int | None = None,
) -> Trace:
    """Load one trace file. Raises ``TraceFormatError`` (a ``UserError``) on unusable input."""
    p = Path(path)
    name = str(p)
    if p.is_dir():
        raise TraceFormatError(name, "is a directory, not a trace file (give a *.json or *.json.gz file)")
    if not p.exists():
        raise TraceFormatError(name, "no such file")
    threshold = DEFAULT_STREAM_THRESHOLD if stream_threshold is None else stream_threshold
    with open(p, "rb") as fh:
        head = fh.read(2)
    gz = head == GZIP_MAGIC
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


def _read_all(p: Path, gz: bool, *, partial: bool) -> tuple[bytes, bool]:
    raw = p.read_bytes()
    if not raw.strip():
        raise TraceFormatError(str(p), "is empty (0 trace events); was the profiler stopped before it wrote?")
    if not gz:
        return raw, False
    try:
        return gzip.decompress(raw), False
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
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
    first = _first_byte(data)
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
        trace = build_trace(name, _salvage(io.BytesIO(data), first == b"{"))
        trace.partial = True
    if not trace.host and not trace.device:
        raise TraceFormatError(name, "contains no usable trace events (no cpu ops, annotations or kernels)")
    return trace


_LEADING_WS = re.compile(rb"\s*")


def _first_byte(data: bytes) -> bytes:
    """The first non-whitespace byte, without copying the buffer."""
    i = _LEADING_WS.match(data)
    start = i.end() if i else 0
    return data[start : start + 1]


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
    events = [ev for ev in map(event_from_obj, raw_events) if ev is not None]
    trace = build_trace(name, events)
    trace.skipped_events = len(raw_events) - len(events)
    if isinstance(obj, dict):
        props = obj.get("deviceProperties")
        if isinstance(props, list):
            trace.device_names = [str(d.get("name", "")) for d in props if isinstance(d, dict)]
        dist = obj.get("distributedInfo")
        if isinstance(dist, dict) and isinstance(dist.get("rank"), int):
            trace.rank = dist["rank"]
    return trace


def _num(v: Any) -> float | None:
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


def event_from_obj(o: Any) -> Event | None:
    """Convert one decoded JSON value to an ``Event``, or ``None`` if it is unusable."""
    if not isinstance(o, dict):
        return None
    ph = o.get("ph")
    if not isinstance(ph, str):
        return None
    ts = _num(o.get("ts", 0.0))
    dur = _num(o.get("dur", 0.0))
    if ts is None or dur is None or dur != dur or ts != ts:
        return None
    name = o.get("name", "")
    cat = o.get("cat", "")
    pid = _id_like(o.get("pid", 0))
    tid = _id_like(o.get("tid", 0))
    a = o.get("args")
    args = None
    if isinstance(a, dict):
        args = Args(
            correlation=_int_or_none(a.get("correlation")),
            external_id=_int_or_none(a.get("External id")),
            stream=_id_like(a.get("stream")),
        )
    return Event(
        ph=ph,
        name=name if isinstance(name, str) else str(name),
        cat=cat if isinstance(cat, str) else "",
        pid=0 if pid is None else pid,
        tid=0 if tid is None else tid,
        ts=ts,
        dur=max(dur, 0.0),
        id=_id_like(o.get("id")),
        args=args,
    )


def _salvage(stream: IO[bytes], is_doc: bool) -> Iterator[Event]:
    """Yield events from a damaged document until the damage; used by ``--partial``."""
    import ijson

    prefix = "traceEvents.item" if is_doc else "item"
    try:
        for obj in ijson.items(stream, prefix, use_float=True):
            ev = event_from_obj(obj)
            if ev is not None:
                yield ev
    except (ijson.JSONError, ijson.IncompleteJSONError, zlib.error, EOFError, OSError):
        return


def _lenient_events(text: bytes) -> list[Event]:
    raw = msgspec.json.decode(text)
    return [ev for ev in map(event_from_obj, raw if isinstance(raw, list) else []) if ev is not None]


def _load_chunked(p: Path, gz: bool, *, partial: bool) -> Trace | None:
    """The chunked msgspec path; None when the layout is not one it handles (the caller decodes otherwise)."""
    name = str(p)
    opener: Any = gzip.open if gz else open
    damage: str | None = None
    unchunkable = False
    with opener(p, "rb") as fh:
        reader = ChunkedReader(fh, chunk_size=CHUNK_SIZE, lenient=_lenient_events)

        def events() -> Iterator[Event]:
            nonlocal damage, unchunkable
            try:
                for chunk in reader.events():
                    yield from chunk
            except Unchunkable:
                unchunkable = True
            except Damaged as exc:
                damage = str(exc)

        trace = build_trace(name, events())
    if unchunkable:
        return None
    meta = reader.metadata()
    if meta is not None:
        trace.device_names = [d.name for d in meta.deviceProperties]
        trace.rank = meta.distributedInfo.rank if meta.distributedInfo else None
    return _finish(trace, None if damage is None else f"truncated or corrupt ({damage})", partial=partial)


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
    opener: Any = gzip.open if gz else open
    with opener(p, "rb") as fh:
        head = fh.read(4096)
    first = head.lstrip()[:1]
    if first not in (b"{", b"["):
        raise TraceFormatError(name, "is not JSON (expected a Chrome trace)")
    prefix = "traceEvents.item" if first == b"{" else "item"
    damage: str | None = None

    def events() -> Iterator[Event]:
        nonlocal damage
        with opener(p, "rb") as fh:
            try:
                for obj in ijson.items(fh, prefix, use_float=True):
                    ev = event_from_obj(obj)
                    if ev is not None:
                        yield ev
            except (zlib.error, EOFError, gzip.BadGzipFile) as exc:
                damage = (
                    f"truncated or corrupt gzip ({exc.__class__.__name__}); the profiler was probably killed mid-write"
                )
            except (ijson.JSONError, ijson.IncompleteJSONError):
                damage = "invalid or truncated JSON"

    return _finish(build_trace(name, events()), damage, partial=partial)


def _as_int(v: int | str | None) -> int | None:
    if v is None or isinstance(v, int):
        return v
    return _int_or_none(v)


def build_trace(name: str, events: Iterable[Event]) -> Trace:
    """Keep host spans, device activity, GPU annotations and launch flows; nest and link them."""
    trace = Trace(path=name)
    host = trace.host
    device = trace.device
    gpu_ann = trace.gpu_annotations
    flows: list[tuple[str, str, int | str, int | str, float]] = []  # (ph, id, pid, tid, ts), compact
    py_scope = PYTHON_SCOPE_PATTERN.search
    intern = sys.intern  # names repeat with every launch and call: keep one string of each
    for e in events:
        ph = e.ph
        if ph == "X":
            cat = e.cat
            if cat in HOST_CATS:
                e.name = intern(e.name)
                e.cat = intern(cat)
                if cat not in RUNTIME_CATS:
                    e.args = None  # only launches need their args (the correlation id)
                host.append(e)
            elif cat in DEVICE_CATS:
                e.name = intern(e.name)
                e.cat = intern(cat)
                device.append(e)
            elif cat == "python_function":
                if e.pid != 0 and py_scope(e.name):
                    host.append(e)
            elif cat == GPU_ANNOTATION_CAT:
                gpu_ann.append(e)
        elif (ph == "s" or ph == "f") and e.cat == "ac2g" and e.id is not None:
            flows.append((ph, str(e.id), e.pid, e.tid, e.ts))
    _nest(host)
    _link(trace, flows)
    return trace


def _nest(host: list[Event]) -> None:
    """Sort host spans by thread and time; give each its innermost enclosing span (``tk_parent``)."""
    threads: dict[tuple[int | str, int | str], list[Event]] = {}
    for h in host:
        key = (h.pid, h.tid)
        lst = threads.get(key)
        if lst is None:
            lst = threads[key] = []
        lst.append(h)
    host.clear()
    by_dur, by_ts = attrgetter("dur"), attrgetter("ts")
    for lst in threads.values():
        # Outer spans first: by start, and the longer of two spans that start together first
        # (two C-level stable sorts instead of a Python key function).
        lst.sort(key=by_dur, reverse=True)
        lst.sort(key=by_ts)
        base = len(host)
        host.extend(lst)
        # Open spans as parallel stacks of (end + tolerance) and index; the tolerance absorbs the
        # rounding of nanosecond clocks printed in microseconds.
        ends: list[float] = []
        idx: list[int] = []
        i = base
        for h in lst:
            dur = h.dur
            end = h.ts + dur
            while ends and end > ends[-1]:
                ends.pop()
                idx.pop()
            if idx:
                p = idx[-1]
                h.tk_parent = p
                host[p].tk_child += dur
            ends.append(end + 1e-3)
            idx.append(i)
            i += 1


def _link(trace: Trace, flows: list[tuple[str, str, int | str, int | str, float]]) -> None:
    """Link device events to their launching runtime call: correlation id, else ``ac2g`` flows."""
    by_corr: dict[int | str, int] = {}
    for i, h in enumerate(trace.host):
        a = h.args
        if a is not None and a.correlation is not None and h.cat in RUNTIME_CATS:
            by_corr[a.correlation] = i
    unlinked: list[Event] = []
    for d in trace.device:
        a = d.args
        if a is not None and a.correlation is not None:
            d.tk_link = by_corr.get(a.correlation, -1)
        if d.tk_link < 0:
            unlinked.append(d)
    if not unlinked or not flows:
        return
    starts = {fid: (pid, tid, ts) for ph, fid, pid, tid, ts in flows if ph == "s"}
    finishes = {(pid, tid, ts): fid for ph, fid, pid, tid, ts in flows if ph == "f"}
    by_place = {(h.pid, h.tid, h.ts): i for i, h in enumerate(trace.host) if h.cat in RUNTIME_CATS}
    for d in unlinked:
        fid = finishes.get((d.pid, d.tid, d.ts))
        src = starts.get(fid) if fid is not None else None
        if src is not None:
            d.tk_link = by_place.get(src, -1)
