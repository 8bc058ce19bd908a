"""Building the columnar ``Trace`` from decoded events: split by kind, columns, nesting.

Every loading path (whole, chunked, parallel pieces, lenient) feeds decoded records here a list
at a time; ``finish`` checks the times, links each device event to its launch (``links``) and
nests the host spans (``tree``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress, repeat
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracekit.annotations import python_frame_filter
from tracekit.trace.heap import release_freed_memory
from tracekit.trace.links import CorrelationIds, link_by_id, link_flows, recode
from tracekit.trace.model import (
    DEVICE_CATS,
    GPU_ANNOTATION_CAT,
    HOST_CATS,
    MALFORMED_CAT,
    RUNTIME_CATS,
    Codes,
    Columns,
    ColumnStore,
    Event,
    FlowStart,
    Trace,
    code_table,
    encode,
)
from tracekit.trace.tree import nest_sorted, nesting_order

_CAT = attrgetter("cat")
_NAME = attrgetter("name")
_TS = attrgetter("ts")
_DUR = attrgetter("dur")
_THREAD = attrgetter("pid", "tid")
# An event starting further than this from the middle of the trace, in interquartile ranges of the
# trace's starts (and at least an hour), lies outside the trace's span.
SPAN_IQRS = 1000.0
SPAN_MIN_US = 3600e6


class TooManyNames(Exception):
    """The trace holds more distinct event names than the builder's ``max_names``; the reader
    words it for the user."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(path)
        self.path = path
        self.limit = limit


@dataclass
class Piece:
    """Columns built from one stretch of a trace's events, coded against the builder's own tables."""

    events: int  # how many events the stretch held (kept or not): the next stretch's origin offset
    host: Columns
    py: Columns
    device: Columns
    strings: list[str]
    threads: list[tuple[int | str, int | str]]
    corr_ids: dict[int | str, int]
    annotations: list[Event]
    flows: list[FlowStart]
    skipped: int


class TraceBuilder:
    """Builds a columnar ``Trace`` from decoded events, fed a list at a time (each decoded chunk).

    Each list is split by category with C-level passes, and what is kept becomes columns at once
    (strings as codes into one table): the decoded objects die with their chunk, so memory follows
    the number of kept events at about 40 bytes each. Nesting and linking run once at the end,
    vectorized.
    """

    def __init__(self, name: str, max_names: int | None = None) -> None:
        self.trace = Trace(path=name)
        self.max_names = max_names  # None: no limit (a worker's piece; the builder it joins checks)
        self._host = ColumnStore()
        self._py = ColumnStore()
        self._device = ColumnStore()
        self._threads: defaultdict[tuple[int | str, int | str], int] = code_table()
        self._cats: defaultdict[str, int] = code_table()
        self._cat_names: list[str] = []
        self._cat_string = np.empty(0, np.int32)  # category code -> string table code
        self._is_host = np.empty(0, bool)
        self._is_device = np.empty(0, bool)
        self._ids = CorrelationIds()
        self._flows: list[FlowStart] = []
        self._seen = 0  # events given so far: the origin of the next chunk
        self.saw_flows = False

    def add(self, chunk: list[Any]) -> None:
        n = len(chunk)
        cc = encode(map(_CAT, chunk), self._cats, n)  # a category code per event
        if len(self._cats) != len(self._cat_string):
            self._grow_cats()
        # Categories present in the chunk (bincount: cheaper than np.unique, which also loads numpy.ma).
        present = {self._cat_names[c] for c in np.flatnonzero(np.bincount(cc, minlength=len(self._cat_names))).tolist()}
        base = self._seen
        self._seen += n
        tr = self.trace
        if not present.isdisjoint(HOST_CATS):
            self._host.append(self._columns(*_select(chunk, self._is_host[cc]), cc, base))
        if not present.isdisjoint(DEVICE_CATS):
            self._device.append(self._columns(*_select(chunk, self._is_device[cc]), cc, base))
        if "python_function" in present:
            # Python frames are dropped, except those a scope pattern of the vocabulary can match.
            py_scope = python_frame_filter().search
            index, events = _select(chunk, cc == self._cats["python_function"])
            keep = np.fromiter((e.pid != 0 and py_scope(e.name) is not None for e in events), bool, len(events))
            self._py.append(self._columns(index[keep], list(compress(events, keep.tolist())), cc, base))
        if GPU_ANNOTATION_CAT in present:
            tr.gpu_annotations.extend(_select(chunk, cc == self._cats[GPU_ANNOTATION_CAT])[1])
        if MALFORMED_CAT in present:
            tr.skipped_events += int(np.count_nonzero(cc == self._cats[MALFORMED_CAT]))
        if "ac2g" in present:
            # Kept as decoded; read only if some device event has no correlation id to link by.
            at = np.flatnonzero(cc == self._cats["ac2g"]).tolist()
            self._flows.extend(f for f in map(chunk.__getitem__, at) if isinstance(f, FlowStart))
        self._check_names()

    def _check_names(self) -> None:
        if self.max_names is not None and len(self.trace.string_ids) > self.max_names:
            raise TooManyNames(self.trace.path, self.max_names)

    def _grow_cats(self) -> None:
        """Refresh the per-category lookups after new categories appeared."""
        self._cat_names = list(self._cats)
        self._is_host = np.array([c in HOST_CATS for c in self._cat_names], bool)
        self._is_device = np.array([c in DEVICE_CATS for c in self._cat_names], bool)
        ids = self.trace.string_ids
        self._cat_string = np.array([ids[c] for c in self._cat_names], np.int32)

    def _columns(self, index: NDArray[np.int64], events: list[Event], cc: Codes, base: int) -> Columns:
        """Columns for ``events``, found at ``index`` in a chunk whose category codes are ``cc``."""
        n = len(events)
        return Columns(
            name=encode(map(_NAME, events), self.trace.string_ids, n),
            cat=self._cat_string[cc[index]],
            thread=encode(map(_THREAD, events), self._threads, n),
            ts=np.fromiter(map(_TS, events), np.float64, n),
            dur=np.fromiter(map(_DUR, events), np.float64, n),
            corr=self._ids.column(events),
            origin=_positions(index, base),
        )

    def piece(self) -> Piece:
        """What this builder holds, coded against its own tables: a worker's result (see ``parallel``)."""
        tr = self.trace
        return Piece(
            events=self._seen,
            host=self._host.drain(),
            py=self._py.drain(),
            device=self._device.drain(),
            strings=list(tr.string_ids),
            threads=list(self._threads),
            corr_ids=self._ids.codes,
            annotations=tr.gpu_annotations,
            flows=self._flows,
            skipped=tr.skipped_events,
        )

    def absorb(self, piece: Piece) -> None:
        """Append a piece built elsewhere (the events that follow those given so far): its codes are
        mapped onto this builder's tables and its origins shifted past the events seen so far."""
        tr = self.trace
        strings = encode(piece.strings, tr.string_ids, len(piece.strings))
        self._check_names()
        threads = encode(piece.threads, self._threads, len(piece.threads))
        corr_codes = self._ids.translation(piece.corr_ids)
        for src, dst in ((piece.host, self._host), (piece.py, self._py), (piece.device, self._device)):
            if not len(src):
                continue
            # The store copies every column in: nothing keeps the unpickled message alive.
            dst.append(
                Columns(
                    name=strings[src.name],
                    cat=strings[src.cat],
                    thread=threads[src.thread],
                    ts=src.ts,
                    dur=src.dur,
                    corr=recode(src.corr, corr_codes),
                    origin=_positions(src.origin.astype(np.int64), self._seen),
                )
            )
        self._seen += piece.events
        tr.gpu_annotations.extend(piece.annotations)
        tr.skipped_events += piece.skipped
        self._flows.extend(piece.flows)

    def finish(self) -> Trace:
        tr = self.trace
        tr.strings = list(tr.string_ids)
        tr.threads = list(self._threads)
        self._host.append(self._py.drain())  # the kept Python frames after the ops, in the order they always had
        host = self._host.drain()
        kernels = self._device.drain()
        release_freed_memory()
        host, tr.kernels = _keep_in_range(tr, host, kernels)
        # Link by correlation id first, then drop the ids (8 bytes a span) before nesting, the
        # moment this build needs the most memory; the links follow the spans into nesting order.
        runtime = self._runtime(host)
        launch_ids = host.corr[runtime]
        link = link_by_id(runtime, launch_ids, tr.kernels.corr)
        tr.ids_missing = bool((tr.kernels.corr == -1).any() or (launch_ids == -1).any())
        del runtime, launch_ids
        host.corr = np.empty(0, np.int64)
        tr.kernels.corr = np.empty(0, np.int64)
        order = nesting_order(host.thread, host.ts, host.dur)
        host.sort_in_place(order)
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))
        del order
        tr.link = np.where(link >= 0, position[np.maximum(link, 0)], -1) if len(position) else link
        del position, link
        tr.parent = nest_sorted(host.thread, host.ts, host.dur)
        tr.spans = host
        self.saw_flows = bool(self._flows)
        link_flows(tr, self._flows)
        self._flows = []
        return tr

    def _runtime(self, host: Columns) -> NDArray[np.int64]:
        """Which of ``host`` are runtime calls (the launches kernels link to)."""
        ids = self.trace.string_ids
        codes = [ids[c] for c in RUNTIME_CATS if c in ids]
        return np.flatnonzero(np.isin(host.cat, codes)) if codes else np.zeros(0, np.int64)


def _keep_in_range(tr: Trace, host: Columns, kernels: Columns) -> tuple[Columns, Columns]:
    """The input policy's number check, vectorized over the columns: drop (and count in
    ``tr.out_of_range``) spans whose times are not finite, whose duration is negative, or that lie
    outside the trace's span (``span_bounds``); the GPU annotations likewise."""
    ok_h, ok_k = in_range(host.ts, host.dur), in_range(kernels.ts, kernels.dur)
    # The bounds are quartiles with a wide margin: a systematic sample of the starts (every one up to
    # 200,000 spans) finds them as well, without copying and partitioning every start of a huge trace.
    step = max(1, (len(host) + len(kernels)) // 200_000)
    sample = [host.ts[::step][ok_h[::step]], kernels.ts[::step][ok_k[::step]]]
    lo, hi = span_bounds(np.concatenate(sample))
    for cols, ok in ((host, ok_h), (kernels, ok_k)):
        with np.errstate(invalid="ignore", over="ignore"):
            ok &= (cols.ts >= lo) & (cols.ts + cols.dur <= hi)
    bad = len(host) - int(np.count_nonzero(ok_h)) + len(kernels) - int(np.count_nonzero(ok_k))
    if tr.gpu_annotations:
        kept = [e for e in tr.gpu_annotations if lo <= e.ts and e.dur >= 0 and e.ts + e.dur <= hi]
        bad += len(tr.gpu_annotations) - len(kept)
        tr.gpu_annotations = kept
    if not bad:
        return host, kernels
    tr.out_of_range += bad
    if not ok_h.all():
        host = host.take(np.flatnonzero(ok_h))
    if not ok_k.all():
        kernels = kernels.take(np.flatnonzero(ok_k))
    return host, kernels


def in_range(ts: NDArray[np.float64], dur: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which events have finite times and a non-negative duration (vectorized; the span check
    is ``span_bounds``, over every kind of event at once)."""
    with np.errstate(invalid="ignore", over="ignore"):
        end = ts + dur
        ok: NDArray[np.bool_] = np.isfinite(end) & np.isfinite(ts) & (dur >= 0)
    return ok


def span_bounds(starts: NDArray[np.float64]) -> tuple[float, float]:
    """The trace's span: starts further from its median than ``SPAN_IQRS`` interquartile ranges
    (and at least an hour) lie outside it."""
    n = len(starts)
    if n == 0:
        return float("-inf"), float("inf")
    at = [(n - 1) // 4, (n - 1) // 2, 3 * (n - 1) // 4]
    # Order statistics by partition: np.percentile would load numpy.ma into every command's start-up.
    q25, q50, q75 = np.partition(starts, at)[at].tolist()
    reach = max(SPAN_IQRS * (q75 - q25), SPAN_MIN_US)
    return q50 - reach, q50 + reach


def _positions(index: NDArray[np.int64], base: int) -> NDArray[np.integer[Any]]:
    """``index + base``, in 32 bits while the positions fit."""
    top = base + (int(index[-1]) if len(index) else 0)
    return (index + base).astype(np.int32 if top < 2**31 else np.int64)


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
