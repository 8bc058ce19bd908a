"""Fast, typed loading of Chrome-trace files (``.json`` / ``.json.gz``) from any torch.profiler source.

Three paths share one builder (``TraceBuilder``):

* whole (small files): inflate (ISA-L where installed), then decode with msgspec into typed
  records that keep only the fields analysis reads; unknown fields are skipped inside the C decoder;
* chunked (more than ``CHUNKED_THRESHOLD`` bytes of JSON): the same decoder on 8 MB pieces of the
  event array, so the text is never whole in memory (see ``chunked``);
* streaming (a layout the chunked reader does not handle, past ``stream_threshold``): ijson walks
  the event array one event at a time.

A trace whose events do not fit the typed table (a phase outside the Chrome format, a field of
an unexpected type) is decoded leniently, event by event. Malformed input never escapes as a
traceback: each failure becomes a ``TraceFormatError`` naming the file and the problem, and
``partial=True`` salvages the events before a truncation.
"""

from __future__ import annotations

import gc
import io
import os
import re
import struct
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from itertools import compress, islice, repeat
from operator import attrgetter
from pathlib import Path
from typing import IO, Any, Union

import msgspec
import numpy as np
from numpy.typing import NDArray

from tracekit.errors import TraceFormatError
from tracekit.trace.chunked import ChunkedReader, Damaged, Unchunkable
from tracekit.trace.gz import ERRORS as gz_errors
from tracekit.trace.gz import open_gz, open_gz_into, read_gz
from tracekit.trace.model import (
    DEVICE_CATS,
    FLOWS_ONLY,
    GPU_ANNOTATION_CAT,
    HOST_CATS,
    PYTHON_SCOPE_PATTERN,
    RUNTIME_CATS,
    SPANS_ONLY,
    AnyEvent,
    Args,
    Columns,
    Event,
    FlowEnd,
    FlowStart,
    Skipped,
    Trace,
    TraceDoc,
    code_table,
    encode,
)
from tracekit.trace.tree import nest

GZIP_MAGIC = b"\x1f\x8b"
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
        return _load(Path(path), partial=partial, stream_threshold=stream_threshold)
    finally:
        if paused:
            gc.enable()


def _load(p: Path, *, partial: bool, stream_threshold: int | None) -> Trace:
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
        trace = build_trace_batched(name, _salvage(io.BytesIO(data), first == b"{"))
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


_SKIPPED = Skipped()


def event_from_obj(o: Any) -> AnyEvent | None:
    """Convert one decoded JSON value to the record the typed decoder would give, or ``None`` if
    it is malformed: an ``Event`` (complete span), a flow end, or ``Skipped`` (any other phase)."""
    if not isinstance(o, dict):
        return None
    ph = o.get("ph")
    if not isinstance(ph, str):
        return None
    ts = _num(o.get("ts", 0.0))
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
    dur = _num(o.get("dur", 0.0))
    if dur is None or dur != dur:
        return None
    name = o.get("name", "")
    a = o.get("args")
    args = None
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


def _salvage(stream: IO[bytes], is_doc: bool) -> Iterator[AnyEvent]:
    """Yield events from a damaged document until the damage; used by ``--partial``."""
    import ijson

    prefix = "traceEvents.item" if is_doc else "item"
    try:
        for obj in ijson.items(stream, prefix, use_float=True):
            ev = event_from_obj(obj)
            if ev is not None:
                yield ev
    except (ijson.JSONError, ijson.IncompleteJSONError, *gz_errors):
        return


def _lenient_events(text: bytes) -> list[AnyEvent]:
    raw = msgspec.json.decode(text)
    return [ev for ev in map(event_from_obj, raw if isinstance(raw, list) else []) if ev is not None]


def _open_binary(p: Path) -> IO[bytes]:
    return open(p, "rb")


_spans_decoder = msgspec.json.Decoder(list[Union[SPANS_ONLY]])  # type: ignore[valid-type]  # noqa: UP007
_flows_decoder = msgspec.json.Decoder(list[Union[FLOWS_ONLY]])  # type: ignore[valid-type]  # noqa: UP007


def _load_chunked(p: Path, gz: bool, *, partial: bool) -> Trace | None:
    """The chunked msgspec path; None when the layout is not one it handles (the caller decodes otherwise).

    Flow events are skipped at first: launches link to their kernels by correlation id. Only when
    some launch or device event has no correlation id is the file read a second time for flows.
    """
    builder = TraceBuilder(str(p))
    reader, damage, unchunkable = _chunked_pass(p, gz, _spans_decoder, builder.add)
    if unchunkable:
        return None
    trace = builder.finish()
    if not builder.saw_flows and _needs_flows(trace):
        flows: list[Any] = []

        def keep_flows(chunk: list[Any]) -> None:
            flows.extend(f for f in chunk if isinstance(f, FlowStart) and f.cat == "ac2g")

        _chunked_pass(p, gz, _flows_decoder, keep_flows)
        _link_flows(trace, flows)
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
        reader = ChunkedReader(fh, chunk_size=CHUNK_SIZE, lenient=_lenient_events, decoder=decoder)
        try:
            for chunk in reader.events():
                take(chunk)
        except Unchunkable:
            unchunkable = True
        except Damaged as exc:
            damage = str(exc)
    return reader, damage, unchunkable


def _needs_flows(trace: Trace) -> bool:
    """Whether flows could link what correlation ids did not: some device event is unlinked and
    some device event or launch has no correlation id (a flow starts at a launch and ends at its
    kernel under the same id, so a kernel whose id names no launch has no flow either)."""
    if not len(trace.kernels) or not (trace.link < 0).any():
        return False
    if (trace.kernels.corr == -1).any():
        return True
    return bool((trace.spans.corr[trace.host_mask(RUNTIME_CATS)] == -1).any())


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
    first = head.lstrip()[:1]
    if first not in (b"{", b"["):
        raise TraceFormatError(name, "is not JSON (expected a Chrome trace)")
    prefix = "traceEvents.item" if first == b"{" else "item"
    damage: str | None = None

    def events() -> Iterator[AnyEvent]:
        nonlocal damage
        with opener(p) as fh:
            try:
                for obj in ijson.items(fh, prefix, use_float=True):
                    ev = event_from_obj(obj)
                    if ev is not None:
                        yield ev
            except gz_errors as exc:
                damage = (
                    f"truncated or corrupt gzip ({exc.__class__.__name__}); the profiler was probably killed mid-write"
                )
            except (ijson.JSONError, ijson.IncompleteJSONError):
                damage = "invalid or truncated JSON"

    return _finish(build_trace_batched(name, events()), damage, partial=partial)


_CAT = attrgetter("cat")
_NAME = attrgetter("name")
_TS = attrgetter("ts")
_DUR = attrgetter("dur")
_THREAD = attrgetter("pid", "tid")


_NONE_IS_MINUS_ONE: dict[Any, Any] = {None: -1}
_CORR = attrgetter("args.correlation")


def _corr_of(e: Event) -> int | str | None:
    a = e.args
    return None if a is None else a.correlation


def _correlations(events: list[Event]) -> list[int | str | None]:
    try:
        return list(map(_CORR, events))  # fast path: every event has args
    except AttributeError:
        return list(map(_corr_of, events))


class TraceBuilder:
    """Builds a columnar ``Trace`` from decoded events, fed a list at a time (each decoded chunk).

    Each list is split by category with C-level passes, and what is kept becomes columns at once
    (strings as codes into one table): the decoded objects die with their chunk, so memory follows
    the number of kept events at about 60 bytes each. Nesting and linking run once at the end,
    vectorized.
    """

    def __init__(self, name: str) -> None:
        self.trace = Trace(path=name)
        self._host: list[Columns] = []
        self._py: list[Columns] = []
        self._device: list[Columns] = []
        self._threads: defaultdict[tuple[int | str, int | str], int] = code_table()
        self._cats: defaultdict[str, int] = code_table()
        self._cat_names: list[str] = []
        self._cat_string = np.empty(0, np.int64)  # category code -> string table code
        self._is_host = np.empty(0, bool)
        self._is_device = np.empty(0, bool)
        self._corrs: dict[int | str, int] = {}  # codes for ids that are not integers
        self._flows: list[FlowStart] = []
        self._seen = 0  # events given so far: the origin of the next chunk
        self.saw_flows = False

    def add(self, chunk: list[Any]) -> None:
        n = len(chunk)
        cc = encode(map(_CAT, chunk), self._cats, n)  # a category code per event
        if len(self._cats) != len(self._cat_string):
            self._grow_cats()
        present = {self._cat_names[c] for c in np.unique(cc).tolist()}
        base = self._seen
        self._seen += n
        tr = self.trace
        if not present.isdisjoint(HOST_CATS):
            self._host.append(self._columns(*_select(chunk, self._is_host[cc]), cc, base))
        if not present.isdisjoint(DEVICE_CATS):
            self._device.append(self._columns(*_select(chunk, self._is_device[cc]), cc, base))
        if "python_function" in present:
            py_scope = PYTHON_SCOPE_PATTERN.search
            index, events = _select(chunk, cc == self._cats["python_function"])
            keep = np.fromiter((e.pid != 0 and py_scope(e.name) is not None for e in events), bool, len(events))
            self._py.append(self._columns(index[keep], list(compress(events, keep.tolist())), cc, base))
        if GPU_ANNOTATION_CAT in present:
            tr.gpu_annotations.extend(_select(chunk, cc == self._cats[GPU_ANNOTATION_CAT])[1])
        if "ac2g" in present:
            # Kept as decoded; read only if some device event has no correlation id to link by.
            at = np.flatnonzero(cc == self._cats["ac2g"]).tolist()
            self._flows.extend(f for f in map(chunk.__getitem__, at) if isinstance(f, FlowStart))

    def _grow_cats(self) -> None:
        """Refresh the per-category lookups after new categories appeared."""
        self._cat_names = list(self._cats)
        self._is_host = np.array([c in HOST_CATS for c in self._cat_names], bool)
        self._is_device = np.array([c in DEVICE_CATS for c in self._cat_names], bool)
        ids = self.trace.string_ids
        self._cat_string = np.array([ids[c] for c in self._cat_names], np.int64)

    def _columns(self, index: NDArray[np.int64], events: list[Event], cc: NDArray[np.int64], base: int) -> Columns:
        """Columns for ``events``, found at ``index`` in a chunk whose category codes are ``cc``."""
        n = len(events)
        return Columns(
            name=encode(map(_NAME, events), self.trace.string_ids, n),
            cat=self._cat_string[cc[index]],
            thread=encode(map(_THREAD, events), self._threads, n),
            ts=np.fromiter(map(_TS, events), np.float64, n),
            dur=np.fromiter(map(_DUR, events), np.float64, n),
            corr=self._corr_column(events),
            origin=index + base,
        )

    def _corr_column(self, events: list[Event]) -> NDArray[np.int64]:
        """Correlation ids as they are (integers), -1 for none; other ids get codes below -1."""
        corrs = _correlations(events)
        try:
            return np.fromiter(map(_NONE_IS_MINUS_ONE.get, corrs, corrs), np.int64, len(corrs))
        except (TypeError, ValueError, OverflowError):
            ids = self._corrs
            for c in dict.fromkeys(corrs):
                if c is not None and c not in ids:
                    ids[c] = -2 - len(ids)
            return np.fromiter((ids[c] if c is not None else -1 for c in corrs), np.int64, len(corrs))

    def finish(self) -> Trace:
        tr = self.trace
        tr.strings = list(tr.string_ids)
        tr.threads = list(self._threads)
        host = Columns.concat(self._host + self._py)
        tr.kernels = Columns.concat(self._device)
        self._host = self._py = self._device = []
        order, tr.parent, tr.child = nest(host.thread, host.ts, host.dur)
        tr.spans = host.take(order)
        self.saw_flows = bool(self._flows)
        _link(tr, self._flows)
        self._flows = []
        return tr


def _select(chunk: list[Any], mask: NDArray[np.bool_]) -> tuple[NDArray[np.int64], list[Event]]:
    """Positions in ``chunk`` of the spans (``Event``s) where ``mask`` is set, and the spans."""
    index = np.flatnonzero(mask)
    picked = list(map(chunk.__getitem__, index.tolist()))
    if not all(map(isinstance, picked, repeat(Event))):
        # A flow or skipped record with such a category is not a span.
        keep = [type(e) is Event for e in picked]
        index, picked = index[np.array(keep, bool)], list(compress(picked, keep))
    return index, picked


def build_trace(name: str, events: Iterable[Any]) -> Trace:
    """Keep host spans, device activity, GPU annotations and launch flows; nest and link them."""
    b = TraceBuilder(name)
    b.add(events if isinstance(events, list) else list(events))
    return b.finish()


def build_trace_batched(name: str, events: Iterable[Any], batch: int = 1 << 16) -> Trace:
    """``build_trace`` for a long stream of events: memory follows the kept events, not the stream."""
    b = TraceBuilder(name)
    it = iter(events)
    while chunk := list(islice(it, batch)):
        b.add(chunk)
    return b.finish()


def _link(trace: Trace, flows: list[FlowStart]) -> None:
    """Link device events to their launching runtime call: correlation id, else ``ac2g`` flows."""
    runtime = np.flatnonzero(trace.host_mask(RUNTIME_CATS))
    corr = trace.spans.corr[runtime]
    has = corr != -1
    # Later launches win a repeated id, as a dict would have it.
    by_corr = dict(zip(corr[has].tolist(), runtime[has].tolist()))
    trace.link = np.fromiter(map(by_corr.get, trace.kernels.corr.tolist(), repeat(-1)), np.int64, len(trace.kernels))
    _link_flows(trace, flows)


def _link_flows(trace: Trace, flows: list[FlowStart]) -> None:
    """Link the device events still unlinked through ``ac2g`` flows: the flow that ends where the
    event starts begins at its launch."""
    link = trace.link
    unlinked = np.flatnonzero(link < 0).tolist()
    if not unlinked or not flows:
        return
    starts: dict[str, tuple[int | str, int | str, float]] = {}
    finishes: dict[tuple[int | str, int | str, float], str] = {}
    for f in flows:
        if f.id is not None:
            if type(f) is FlowEnd:
                finishes[(f.pid, f.tid, f.ts)] = str(f.id)
            else:
                starts[str(f.id)] = (f.pid, f.tid, f.ts)
    threads = trace.threads
    spans, kernels = trace.spans, trace.kernels
    runtime = np.flatnonzero(trace.host_mask(RUNTIME_CATS)).tolist()
    by_place = {(*threads[int(spans.thread[i])], float(spans.ts[i])): i for i in runtime}
    for k in unlinked:
        fid = finishes.get((*threads[int(kernels.thread[k])], float(kernels.ts[k])))
        src = starts.get(fid) if fid is not None else None
        if src is not None:
            link[k] = by_place.get(src, -1)
