"""Fast, typed loading of Chrome-trace files (``.json`` / ``.json.gz``) from any torch.profiler source.

``load_trace`` checks the file, then hands it to one of two readers, which are peers and know
nothing of each other; every choice between them, and every fallback from one to the other, is
made here:

* ``whole`` (small files): the text inflated (ISA-L where installed) and decoded at once with
  msgspec into typed records that keep only the fields analysis reads;
* ``chunked`` (past ``ReadOptions.chunked_from`` bytes of JSON): the same decoder on ~2 MB pieces
  of the event array, so the text is never whole in memory; past ``parallel_from`` the pieces are
  decoded in worker processes (``parallel``).

Both readers feed one builder (``build.TraceBuilder``, the columnar model). A trace whose events
do not fit the typed table is decoded leniently, event by event (``lenient``). Malformed input
never escapes as a traceback: each failure becomes a ``TraceFormatError`` naming the file and the
problem, in the same words on every path (``errors``), and ``partial=True`` keeps the events
before the damage, found the same way on every path (``chunked.salvage``). Every path keeps to
the input policy: regular files only, the inflate budget, bounded nesting, range-checked numbers.
"""

from __future__ import annotations

import gc
import os
import struct
from pathlib import Path

from tracekit.errors import NotARegularFile, TraceFormatError
from tracekit.files import regular_file
from tracekit.trace.build import TooManyNames
from tracekit.trace.model import Trace
from tracekit.trace.read import chunked, errors, whole
from tracekit.trace.read.errors import BudgetExceeded, GzipDamaged, NoEventArray, TooDeep
from tracekit.trace.read.options import ReadOptions, inflate_budget
from tracekit.trace.read.text import ERRORS as gz_errors
from tracekit.trace.read.text import MAGIC as GZIP_MAGIC
from tracekit.trace.read.text import WS, first_byte, open_gz

_DEFAULTS = ReadOptions()


def load_trace(path: str | os.PathLike[str], *, partial: bool = False, options: ReadOptions | None = None) -> Trace:
    """Load one trace file. Raises ``TraceFormatError`` (a ``UserError``) on unusable input;
    with ``partial``, a damaged file gives the events before the damage (``Trace.partial``).

    The cyclic garbage collector is paused meanwhile: loading makes hundreds of thousands of
    objects and no cycles, and each collection would walk them all again.
    """
    paused = gc.isenabled()
    gc.disable()
    opts = options or _DEFAULTS
    try:
        trace = _load(Path(path), partial, opts)
        # The chunked readers stop as the table passes the limit; a text read whole is checked here.
        if max(len(trace.strings), len(trace.string_ids)) > opts.max_names:
            raise errors.too_many_names(str(path), opts.max_names)
        return trace
    except TooManyNames as exc:
        raise errors.too_many_names(exc.path, exc.limit) from None
    finally:
        if paused:
            gc.enable()


def _load(p: Path, partial: bool, opts: ReadOptions) -> Trace:
    name = str(p)
    file_size, gz = _check_file(p)
    _check_head(p, gz, opts)
    budget = inflate_budget(opts)
    size = _decompressed_size(p, gz, file_size)
    try:
        try:
            if opts.loader == "whole":
                return _whole(p, gz, partial, budget, opts)
            if opts.loader == "auto" and size <= opts.chunked_from:
                # The whole text in memory, up to twice the size that sends a file to the chunked
                # reader: a gzip whose size field lies is read in chunks from there on.
                try:
                    return _whole(p, gz, partial, min(budget, 2 * opts.chunked_from), opts)
                except BudgetExceeded:
                    if budget <= 2 * opts.chunked_from:
                        raise
            return _chunked(p, gz, partial, size, budget, opts)
        except TooDeep:
            raise errors.too_deep(name) from None
    except BudgetExceeded:
        raise errors.over_budget(name, budget, opts.budget_source()) from None


def _whole(p: Path, gz: bool, partial: bool, limit: int, opts: ReadOptions) -> Trace:
    try:
        return _usable(whole.read(p, gz, limit=limit, isal=opts.isal))
    except whole.DamagedText as exc:
        return _damaged(exc, partial, opts)
    except TraceFormatError as exc:
        if partial and exc.kind == "gzip" and not exc.has_prefix:
            raise errors.no_gzip_prefix(exc.path) from None
        raise


def _damaged(exc: whole.DamagedText, partial: bool, opts: ReadOptions) -> Trace:
    """A damaged text: an error, or with ``partial`` the events before the damage."""
    if not partial:
        raise exc.error from None
    if exc.refusal is not None:
        raise exc.refusal from None
    trace = chunked.salvage(exc.error.path, exc.text, opts)
    trace.partial = True
    return _usable(trace)


def _chunked(p: Path, gz: bool, partial: bool, size: int, budget: int, opts: ReadOptions) -> Trace:
    """The chunked reader: on several cores past ``parallel_from`` (any doubt there sends the file
    to the serial reader, which says exactly what is wrong); a damaged gzip goes to the whole-file
    reader, which keeps all that inflates (a broken gzip stream loses the output of its last read
    here); a document without an event array to the whole-file decoder, which names what it is."""
    spans = None
    if size > opts.parallel_from:
        from tracekit.trace.read import parallel  # only for large files: it brings multiprocessing

        workers = parallel.load_workers(opts.workers)
        if workers > 1:
            spans = parallel.read_spans(p, gz, workers, budget, opts)
    if spans is None:
        try:
            spans = chunked.read_spans(p, gz, budget, opts)
        except NoEventArray as exc:
            try:
                return _usable(whole.decode_text(str(p), exc.text))
            except whole.DamagedText as damaged:
                return _damaged(damaged, partial, opts)
        except GzipDamaged:
            return _whole(p, gz, partial, budget, opts)
        if spans.damage is not None and gz:
            return _whole(p, gz, partial, budget, opts)
    trace, damage = chunked.complete(spans, p, gz, budget, opts)
    if damage is not None:
        if not partial:
            raise damage
        trace.partial = True
    return _usable(trace)


def _usable(trace: Trace) -> Trace:
    """The trace, unless it holds nothing to analyze (then one line saying what was skipped)."""
    if not trace.host and not trace.device:
        dropped = [f"{trace.skipped_events} malformed events"] if trace.skipped_events else []
        dropped += [f"{trace.out_of_range} events with times out of range"] if trace.out_of_range else []
        why = f" (skipped {' and '.join(dropped)})" if dropped else ""
        raise errors.no_usable_events(trace.path, why)
    return trace


def _check_file(p: Path) -> tuple[int, bool]:
    """Refuse what is not a readable regular file (``files.regular_file``); return its size and
    whether it is gzipped."""
    try:
        st = regular_file(p, "trace file")
    except NotARegularFile as exc:
        advice = "give a *.json or *.json.gz file" if exc.kind == "directory" else exc.advice
        raise TraceFormatError(str(p), exc.problem, kind="not-a-file", advice=advice) from None
    with open(p, "rb") as fh:
        return st.st_size, fh.read(2) == GZIP_MAGIC


def _check_head(p: Path, gz: bool, opts: ReadOptions) -> None:
    """Refuse text that does not start like JSON from its first bytes, before inflating more."""
    try:
        with open_gz(p, isal=opts.isal) if gz else open(p, "rb") as fh:
            head = fh.read(4096)
    except gz_errors:
        return  # damaged from the start: each reader says so in its own place
    if head.strip(WS) and first_byte(head) not in (b"{", b"["):
        raise errors.not_json(str(p), head[:64])


def _decompressed_size(p: Path, gz: bool, size: int) -> int:
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
    size, gz = _check_file(p)
    return _decompressed_size(p, gz, size)


def read_text(path: str | os.PathLike[str], options: ReadOptions | None = None) -> bytes:
    """The whole (decompressed) JSON text of a trace file, for code that rewrites the file; at
    most the inflate budget."""
    opts = options or _DEFAULTS
    p = Path(path)
    _, gz = _check_file(p)
    _check_head(p, gz, opts)
    budget = inflate_budget(opts)
    try:
        data, gz_error = whole.read_all(p, gz, limit=budget, isal=opts.isal)
    except BudgetExceeded:
        raise errors.over_budget(str(p), budget, opts.budget_source()) from None
    if gz_error is not None:
        raise errors.gzip_damaged(str(p), gz_error, has_prefix=bool(data.strip(WS)))
    if not data.strip(WS):
        raise errors.empty(str(p))
    return data


def decode_bytes(name: str, data: bytes, options: ReadOptions | None = None) -> Trace:
    """A trace from its JSON text (as ``read_text`` gives it). Each span's ``origin`` is the
    position of its event in the document's event array."""
    paused = gc.isenabled()
    gc.disable()
    most = (options or _DEFAULTS).max_names
    try:
        trace = _usable(whole.decode_text(name, data))
        if max(len(trace.strings), len(trace.string_ids)) > most:
            raise errors.too_many_names(name, most)
        return trace
    except whole.DamagedText as exc:
        raise exc.error from None
    except TooDeep:
        raise errors.too_deep(name) from None
    finally:
        if paused:
            gc.enable()
