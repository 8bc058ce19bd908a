"""Building the columnar ``Trace`` from decoded events: split by kind, columns, nesting, links.

Every loading path (whole, chunked, parallel pieces, lenient) feeds decoded records here a list
at a time; ``finish`` nests the host spans and links each device event to its launch.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress, repeat
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracekit.annotations import python_frame_filter
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
    FlowEnd,
    FlowStart,
    Trace,
    code_table,
    encode,
)
from tracekit.trace.policy import in_range, span_bounds
from tracekit.trace.tree import nest_sorted, nesting_order

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

    def __init__(self, name: str) -> None:
        self.trace = Trace(path=name)
        self._host = ColumnStore()
        self._py = ColumnStore()
        self._device = ColumnStore()
        self._threads: defaultdict[tuple[int | str, int | str], int] = code_table()
        self._cats: defaultdict[str, int] = code_table()
        self._cat_names: list[str] = []
        self._cat_string = np.empty(0, np.int32)  # category code -> string table code
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
            corr=self._corr_column(events),
            origin=_positions(index, base),
        )

    def _corr_column(self, events: list[Event]) -> NDArray[np.int64]:
        """Correlation ids as they are (integers), -1 for none; other ids get codes below -1."""
        try:
            # Every event has args, and every id is an integer or absent (-1, the default).
            col = np.fromiter(map(_CORR, events), np.int64, len(events))
            if not (col < -1).any():  # below -1 are the codes of other ids
                return col
        except (AttributeError, TypeError, ValueError, OverflowError):
            pass
        corrs = _correlations(events)
        try:
            col = np.fromiter(map(_NONE_IS_MINUS_ONE.get, corrs, corrs), np.int64, len(corrs))
            if not (col < -1).any():
                return col
        except (TypeError, ValueError, OverflowError):
            pass
        # Some id is not an integer from -1 up: those get codes below -1, the others stay as
        # they are (so they still meet their launches, which may sit in another column). A
        # string of digits is its integer, as the passes above read it in every other chunk.
        ids = self._corrs

        def code(c: int | str | None) -> int:
            if c is None:
                return -1
            if type(c) is str:
                try:
                    c = int(c)
                except ValueError:
                    pass
            if type(c) is int and -1 <= c < 1 << 63:
                return c
            got = ids.get(c)
            if got is None:
                got = ids[c] = -2 - len(ids)
            return got

        return np.fromiter(map(code, corrs), np.int64, len(corrs))

    def piece(self) -> Piece:
        """What this builder holds, coded against its own tables: a worker's result (see ``parallel``)."""
        tr = self.trace
        return Piece(
            events=self._seen,
            host=self._host.take(),
            py=self._py.take(),
            device=self._device.take(),
            strings=list(tr.string_ids),
            threads=list(self._threads),
            corr_ids=self._corrs,
            annotations=tr.gpu_annotations,
            flows=self._flows,
            skipped=tr.skipped_events,
        )

    def absorb(self, piece: Piece) -> None:
        """Append a piece built elsewhere (the events that follow those given so far): its codes are
        mapped onto this builder's tables and its origins shifted past the events seen so far."""
        tr = self.trace
        strings = encode(piece.strings, tr.string_ids, len(piece.strings))
        threads = encode(piece.threads, self._threads, len(piece.threads))
        # Non-integer correlation ids are coded below -1, per builder: map the piece's codes onto ours.
        corr_codes: dict[int, int] = {}
        for cid, local in piece.corr_ids.items():
            corr_codes[local] = self._corrs.setdefault(cid, -2 - len(self._corrs))
        for src, dst in ((piece.host, self._host), (piece.py, self._py), (piece.device, self._device)):
            if not len(src):
                continue
            corr = src.corr
            if corr_codes:
                corr = np.fromiter((corr_codes.get(c, c) for c in corr.tolist()), np.int64, len(corr))
            # The store copies every column in: nothing keeps the unpickled message alive.
            dst.append(
                Columns(
                    name=strings[src.name],
                    cat=strings[src.cat],
                    thread=threads[src.thread],
                    ts=src.ts,
                    dur=src.dur,
                    corr=corr,
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
        self._host.append(self._py.take())  # the kept Python frames after the ops, in the order they always had
        host = self._host.take()
        kernels = self._device.take()
        release_freed_memory()
        host, tr.kernels = _keep_in_range(tr, host, kernels)
        # Link by correlation id first, then drop the ids (8 bytes a span) before nesting, the
        # moment this build needs the most memory; the links follow the spans into nesting order.
        runtime = self._runtime(host)
        launch_ids = host.corr[runtime]
        link = _link_by_id(runtime, launch_ids, tr.kernels.corr)
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


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    After megabyte-sized buffers are freed (a worker's results, unpickled; the decoded chunks),
    glibc serves later arrays from its heap rather than from fresh mappings, and keeps the heap
    when they are freed: on a 12.8 M-span trace ~300 MB stayed resident through nesting, the
    moment a build needs the most memory (measured before the columns grew in place)."""
    c = glibc()
    if c is not None:
        c.malloc_trim(0)


@functools.cache
def glibc() -> Any:
    """The C library, where it is glibc (its allocator's knobs), else None."""
    try:
        import ctypes

        lib = ctypes.CDLL("libc.so.6")
        return lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else None
    except OSError:
        return None


def _keep_in_range(tr: Trace, host: Columns, kernels: Columns) -> tuple[Columns, Columns]:
    """The input policy's number check, vectorized over the columns: drop (and count in
    ``tr.out_of_range``) spans whose times are not finite, whose duration is negative, or that lie
    outside the trace's span (``policy.span_bounds``); the GPU annotations likewise."""
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


def _link_by_id(
    runtime: NDArray[np.int64], launch_ids: NDArray[np.int64], kernel_ids: NDArray[np.int64]
) -> NDArray[np.int64]:
    """For each device event, the runtime call (an index among the host spans, from ``runtime``)
    with the same correlation id, or -1."""
    has = launch_ids != -1
    if not has.all():
        runtime, launch_ids = runtime[has], launch_ids[has]
    if not len(launch_ids):
        return np.full(len(kernel_ids), -1, np.int64)
    if (launch_ids[1:] > launch_ids[:-1]).all():
        ids, launch = launch_ids, runtime  # ids already rise in file order (the six H100/MI300X fixtures)
    else:
        # Sorted by id (stable, so a repeated id keeps its launches in order), the last launch of
        # each id wins, as a dict built in order would have it.
        by_id = np.argsort(launch_ids, kind="stable")
        ids = launch_ids[by_id]
        last = np.ones(len(ids), bool)
        np.not_equal(ids[1:], ids[:-1], out=last[:-1])
        ids, launch = ids[last], runtime[by_id[last]]
    # Each kernel finds its id by bisection.
    at = np.searchsorted(ids, kernel_ids)
    at[at == len(ids)] = 0
    return np.where(ids[at] == kernel_ids, launch[at], -1).astype(np.int64)


def link_flows(trace: Trace, flows: list[FlowStart]) -> None:
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


def needs_flows(trace: Trace) -> bool:
    """Whether flows could link what correlation ids did not: some device event is unlinked and
    some device event or launch has no correlation id (a flow starts at a launch and ends at its
    kernel under the same id, so a kernel whose id names no launch has no flow either)."""
    if not len(trace.kernels) or not (trace.link < 0).any():
        return False
    return trace.ids_missing
