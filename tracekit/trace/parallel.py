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
from tracekit.trace.chunked import ChunkedReader, Damaged, EmptyText, NoEventArray
from tracekit.trace.gz import open_text
from tracekit.trace.heap import glibc
from tracekit.trace.lenient import lenient_events
from tracekit.trace.model import SPANS_DECODER
from tracekit.trace.policy import BudgetExceeded, TooDeep

# The reader's buffer holds twice this, so pieces are ~4 MB. Measured on 2 cores (make
# bench-analyze's traces, whole processes), against 8 MB (~16 MB pieces): ~1 GB trace 2.9-3.4 s
# and 330 MB against 3.5-3.9 s and 440 MB; 12.8 M tiny events 11.3 s and 1.1 GB against 14.2 s
# and 1.3 GB (a piece's decoded events stay in cache and die sooner).
PIECE_BYTES = 2 * 1024 * 1024


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), 1 where it cannot fork workers safely:
    inside a daemonic process (a Dask worker, say), off Linux, beside other threads; else as
    ``TRACEKIT_LOAD_WORKERS`` says, if set."""
    if multiprocessing.current_process().daemon or not hasattr(os, "sched_getaffinity"):
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() > 1:
        return 1  # forking beside another thread (a progress bar's, say) can copy a held lock
    forced = os.environ.get("TRACEKIT_LOAD_WORKERS")
    if forced is not None and forced.isdigit():
        return max(1, int(forced))
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
    through a pipe. Measured on the ~1 GB trace (2 workers, 8 MB pieces): the workers spent
    5.4-5.7 s of CPU with the pipe, 2.7-3.0 s with shared memory, for the same pieces. A slot is
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


def load_parallel(p: Path, gz: bool, workers: int, budget: int) -> tuple[TraceBuilder, ChunkedReader] | None:
    """Build ``p``'s spans with ``workers`` processes beside this one, which only reads, hands the
    pieces out and merges what comes back. (Measured on 2 cores: this process building pieces
    itself whenever the workers were busy left it the bottleneck; the ~1 GB trace's load took
    2.83 s against 2.51 s, medians of 5 fresh processes each, timed around the load alone.)

    None if the file is damaged, has no event array, or a cut proved wrong: the serial reader
    then decides, in its own words. Past the inflate budget it stops at once (``BudgetExceeded``).
    """
    builder = TraceBuilder(str(p))
    ctx = multiprocessing.get_context("fork")
    # A few pieces in flight per worker: enough to keep them busy, little text held.
    in_flight = 2 * workers + 1
    slots = _Slots(in_flight + 1, 2 * PIECE_BYTES + 2)
    with (
        slots.memory,
        open_text(p, gz) as fh,
        ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start, initargs=(slots.memory,)) as pool,
    ):
        reader = ChunkedReader(fh, chunk_size=PIECE_BYTES, lenient=lenient_events, decoder=SPANS_DECODER, budget=budget)
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
        except (Damaged, NoEventArray, EmptyText, TooDeep):
            _abandon(pool, pending)
            return None
        except BudgetExceeded:
            _abandon(pool, pending)
            raise
    return builder, reader


def _worker_start(shared: mmap.mmap) -> None:
    """In each worker: keep the shared memory its pieces arrive in, and pin glibc's mmap threshold. A worker's decoded events die with each piece;
    with the default (dynamic) threshold the arrays between them come from the heap, whose freed
    holes are never returned, and a worker's memory grows piece after piece."""
    global _shared
    _shared = shared
    c = glibc()
    if c is not None:
        c.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


def _abandon(pool: ProcessPoolExecutor, pending: deque[tuple[Future[Piece | None], int | None]]) -> None:
    for f, _ in pending:
        f.cancel()
    pool.shutdown(wait=True, cancel_futures=True)
