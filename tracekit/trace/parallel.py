"""Large traces on every core: the event array's pieces decoded and built into columns in worker
processes, while this process inflates the next pieces and merges the columns in file order.

The work splits cleanly because each piece's result is small and self-contained: numpy columns
coded against the piece's own string and thread tables (``build.Piece``), which the main process
maps onto the trace's tables with one array lookup per column (``TraceBuilder.absorb``). Nothing
per event crosses a process boundary as a Python object.

This is one load split over the cores of one machine (a pipeline inside one process tree, run by
the standard library's process pool); many traces spread over machines are Dask's job
(``tracekit analyze`` with several paths).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any, Union

import msgspec

from tracekit.trace.build import Piece, TraceBuilder, glibc
from tracekit.trace.chunked import ChunkedReader, Damaged, EmptyText, NoEventArray
from tracekit.trace.gz import open_gz_into
from tracekit.trace.lenient import lenient_events
from tracekit.trace.model import SPANS_ONLY
from tracekit.trace.policy import BudgetExceeded, TooDeep

PIECE_BYTES = 8 * 1024 * 1024
_spans_decoder = msgspec.json.Decoder(list[Union[SPANS_ONLY]])  # type: ignore[valid-type]  # noqa: UP007


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
    return max(1, len(os.sched_getaffinity(0)))


def build_piece(text: bytes) -> Piece | None:
    """Decode one piece and build its columns; None when the piece is not valid JSON (a cut that
    fell inside an event, or damage), which sends the caller back to the serial reader."""
    try:
        try:
            events = _spans_decoder.decode(text)
        except msgspec.ValidationError:
            events = lenient_events(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    b = TraceBuilder("")
    b.add(events)
    return b.piece()


def _local(events: list[Any]) -> Piece:
    b = TraceBuilder("")
    b.add(events)
    return b.piece()


def load_parallel(p: Path, gz: bool, workers: int, budget: int) -> tuple[TraceBuilder, ChunkedReader] | None:
    """Build ``p``'s spans with ``workers`` processes beside this one (which reads and also builds
    pieces whenever every worker is busy); None if the file is damaged, has no event
    array, or a cut proved wrong: the serial reader then decides, in its own words. Past the
    inflate budget it stops at once (``BudgetExceeded``)."""
    builder = TraceBuilder(str(p))
    opener: Any = open_gz_into if gz else _open_binary
    ctx = multiprocessing.get_context("fork")
    with opener(p) as fh, ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start) as pool:
        reader = ChunkedReader(
            fh, chunk_size=PIECE_BYTES, lenient=lenient_events, decoder=_spans_decoder, budget=budget
        )
        pending: deque[Future[Piece | None]] = deque()

        def absorb_oldest() -> bool:
            got = pending.popleft().result()
            if got is None:
                return False
            builder.absorb(got)
            return True

        def here(result: Piece | None) -> None:
            done: Future[Piece | None] = Future()
            done.set_result(result)
            pending.append(done)

        try:
            for piece in reader.texts():
                if not isinstance(piece, bytes):
                    here(_local(piece))
                elif sum(not f.done() for f in pending) >= workers:
                    # Every worker is busy: build this piece here rather than wait. The reader's
                    # own work (inflating, cutting) fills this process only part of the time.
                    here(build_piece(piece))
                else:
                    pending.append(pool.submit(build_piece, piece))
                # A few pieces in flight per worker: enough to keep them busy, little text held.
                while len(pending) > 2 * workers + 1:
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


def _worker_start() -> None:
    """In each worker: pin glibc's mmap threshold. A worker's decoded events die with each piece;
    with the default (dynamic) threshold the arrays between them come from the heap, whose freed
    holes are never returned, and a worker's memory grows piece after piece."""
    c = glibc()
    if c is not None:
        c.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


def _abandon(pool: ProcessPoolExecutor, pending: deque[Future[Piece | None]]) -> None:
    for f in pending:
        f.cancel()
    pool.shutdown(wait=True, cancel_futures=True)


def _open_binary(p: Path) -> IO[bytes]:
    return open(p, "rb")
