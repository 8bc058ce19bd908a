"""Large traces on every core: the event array's pieces decoded and built into columns in worker
processes, while this process inflates the next pieces, hands them over through shared memory and
merges the columns in file order.

The work splits cleanly because each piece's result is small and self-contained: numpy columns
coded against the piece's own string and thread tables (``build.Piece``), which the main process
maps onto the trace's tables with one array lookup per column (``TraceBuilder.absorb``). Nothing
per event crosses a process boundary as a Python object.

This is one load split over the cores of one machine (a pipeline inside one process tree, run by
the standard library's process pool); many traces spread over machines are Dask's job
(``tracekit analyze`` with several paths).
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from tracekit import cores
from tracekit.trace.build import Piece, TraceBuilder
from tracekit.trace.heap import WORKER_MMAP_THRESHOLD, set_mmap_threshold
from tracekit.trace.model import SPANS_DECODER
from tracekit.trace.read.chunked import Spans
from tracekit.trace.read.errors import BudgetExceeded, Damaged, EmptyText, GzipDamaged, NoEventArray, TooDeep
from tracekit.trace.read.lenient import lenient_events
from tracekit.trace.read.options import ReadOptions
from tracekit.trace.read.pieces import ChunkedReader
from tracekit.trace.read.text import open_text

_log = logging.getLogger(__name__)


def load_workers(requested: int | None) -> int:
    """How many worker processes a load may use: ``requested`` where this process may fork at
    all (not a daemonic process such as a Dask worker, on a system with ``fork``); else, with no
    number requested, one per core of this process's affinity mask, and 1 beside another thread
    (forking beside a thread can copy a lock it holds into the child)."""
    if multiprocessing.current_process().daemon or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if requested is not None:
        return requested
    if not hasattr(os, "sched_getaffinity"):
        return 1
    if threading.active_count() > 1:
        _log.debug("loading on one core: %d other threads are alive", threading.active_count() - 1)
        return 1
    return cores.usable_cores()


def build_piece(text: bytes | memoryview) -> Piece | None:
    """Decode one piece and build its columns; None when the piece is not valid JSON (a cut that
    fell inside an event, or damage), which sends the caller back to the serial reader."""
    try:
        try:
            events = SPANS_DECODER.decode(text)
        except msgspec.ValidationError:
            events = lenient_events(bytes(text))
    except (msgspec.DecodeError, RecursionError):
        return None
    b = TraceBuilder("")
    b.add(events)
    return b.piece()


# In a worker: the shared memory its pieces arrive in (``_Slots``), set by ``_worker_start``.
_shared: mmap.mmap | None = None


def build_slot(start: int, length: int) -> Piece | None:
    """``build_piece`` on the text the main process put in shared memory at ``start``."""
    assert _shared is not None
    with memoryview(_shared) as mv, mv[start : start + length] as text:
        return build_piece(text)


class _Slots:
    """Shared memory, made before the workers fork (so they inherit it), that carries each piece's
    text to its worker: one copy into memory both processes map, instead of a message pickled
    through a pipe (which costs the workers about as much CPU again as decoding). A slot is
    reused once its piece's result is absorbed."""

    def __init__(self, count: int, size: int) -> None:
        self.size = size
        self.memory = mmap.mmap(-1, count * size)
        self.free = list(range(count))

    def put(self, text: bytes) -> int | None:
        """Copy ``text`` into a free slot; the slot's start, or None when none is free or it does not fit."""
        if not self.free or len(text) > self.size:
            return None
        start = self.free.pop() * self.size
        self.memory[start : start + len(text)] = text
        return start

    def release(self, start: int | None) -> None:
        if start is not None:
            self.free.append(start // self.size)


def _local(events: list[Any]) -> Piece:
    b = TraceBuilder("")
    b.add(events)
    return b.piece()


def read_spans(p: Path, gz: bool, workers: int, budget: int, options: ReadOptions) -> Spans | None:
    """Build ``p``'s spans with ``workers`` processes beside this one, which only reads, hands the
    pieces out and merges what comes back: building pieces here too would make this process, the
    one every piece passes through, the bottleneck.

    None if the file is damaged, has no event array, or a cut proved wrong: the serial reader
    then decides, in its own words. Past the inflate budget it stops at once (``BudgetExceeded``).
    Workers are forked (``fork`` start method, whatever the platform's default): they inherit the
    shared memory their pieces arrive in.
    """
    builder = TraceBuilder(str(p), options.max_names)
    ctx = multiprocessing.get_context("fork")
    # A few pieces in flight per worker: enough to keep them busy, little text held.
    in_flight = 2 * workers + 1
    slots = _Slots(in_flight + 1, 2 * options.piece_bytes + 2)
    with (
        slots.memory,
        ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start, initargs=(slots.memory,)) as pool,
        open_text(p, gz, isal=options.isal) as fh,
    ):
        reader = ChunkedReader(
            fh, chunk_size=options.piece_bytes, lenient=lenient_events, decoder=SPANS_DECODER, budget=budget
        )
        pending: deque[tuple[Future[Piece | None], int | None]] = deque()

        def absorb_oldest() -> bool:
            future, slot = pending.popleft()
            got = future.result()
            slots.release(slot)
            if got is None:
                return False
            builder.absorb(got)
            return True

        def here(result: Piece | None) -> None:
            done: Future[Piece | None] = Future()
            done.set_result(result)
            pending.append((done, None))

        try:
            for piece in reader.texts():
                if not isinstance(piece, bytes):
                    here(_local(piece))
                    continue
                slot = slots.put(piece)
                if slot is None:  # a piece longer than a slot (one huge event): by pipe
                    pending.append((pool.submit(build_piece, piece), None))
                else:
                    pending.append((pool.submit(build_slot, slot, len(piece)), slot))
                while len(pending) > in_flight:
                    if not absorb_oldest():
                        _abandon(pool, pending)
                        return None
            while pending:
                if not absorb_oldest():
                    _abandon(pool, pending)
                    return None
        except (Damaged, GzipDamaged, NoEventArray, EmptyText, TooDeep):
            _abandon(pool, pending)
            return None
        except BudgetExceeded:
            _abandon(pool, pending)
            raise
    return Spans(builder, reader)


def _worker_start(shared: mmap.mmap) -> None:
    """In each worker: keep the shared memory its pieces arrive in, and pin the allocator's mmap
    threshold (``heap``): a worker's decoded events die with each piece, and with the default
    (dynamic) threshold the arrays between them come from the heap, whose freed holes are never
    returned, so a worker's memory would grow piece after piece."""
    global _shared
    _shared = shared
    set_mmap_threshold(WORKER_MMAP_THRESHOLD)


def _abandon(pool: ProcessPoolExecutor, pending: deque[tuple[Future[Piece | None], int | None]]) -> None:
    for f, _ in pending:
        f.cancel()
    pool.shutdown(wait=True, cancel_futures=True)
