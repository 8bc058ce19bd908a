"""Fast, typed loading of Chrome-trace files (``.json`` / ``.json.gz``) from any torch.profiler source.

This module reads files and picks a decode path; the records it decodes go to one builder
(``build.TraceBuilder``, the columnar model) on every path:

* whole (small files): inflate (ISA-L where installed), then decode with msgspec into typed
  records that keep only the fields analysis reads; unknown fields are skipped inside the C decoder;
* chunked (more than ``CHUNKED_THRESHOLD`` bytes of JSON, or ``chunked_from``): the same
  decoder on ~2 MB pieces of the event array, so the text is never whole in memory (see
  ``chunked``); it reads every layout, and salvages the events before damage for ``--partial``
  on both paths. ``TRACEKIT_LOADER=whole|chunked`` forces one path (to compare them).

A trace whose events do not fit the typed table (a phase outside the Chrome format, a field of
an unexpected type) is decoded leniently, event by event (``lenient``). Malformed input never escapes as a
traceback: each failure becomes a ``TraceFormatError`` naming the file and the problem, in the same
words on every path (``policy``), and ``partial=True`` salvages the events before a truncation.
Every path keeps to the input policy (``policy``): regular files only, the inflate budget, bounded
nesting, range-checked numbers.
"""

from __future__ import annotations

import gc
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import msgspec

from tracekit.errors import TraceFormatError, UserError
from tracekit.fsutil import regular_file
from tracekit.trace import policy
from tracekit.trace.build import TraceBuilder
from tracekit.trace.chunked import ChunkedReader, Damaged, EmptyText, GzipDamaged, NoEventArray
from tracekit.trace.decode import decode_text, usable
from tracekit.trace.gz import ERRORS as gz_errors
from tracekit.trace.gz import MAGIC as GZIP_MAGIC
from tracekit.trace.gz import open_gz, open_text, read_gz
from tracekit.trace.lenient import lenient_events
from tracekit.trace.links import link_flows, needs_flows
from tracekit.trace.model import (
    FLOWS_ONLY,
    SPANS_DECODER,
    FlowStart,
    Trace,
)
from tracekit.trace.policy import BudgetExceeded, TooDeep
from tracekit.trace.scan import error_byte, first_byte

CHUNKED_THRESHOLD = policy.env_size("TRACEKIT_CHUNKED_BYTES", 32 << 20)
# Below this much JSON, starting workers and shipping pieces costs more than the cores save
# (measured with make bench-analyze's traces on 2 cores); below it ``parallel`` is not imported.
PARALLEL_BYTES = policy.env_size("TRACEKIT_PARALLEL_BYTES", 128 << 20)
# The reader's buffer holds twice this, so pieces are ~2 MB, which stay in cache: the V100 fixture
# loaded in 0.128 s against 0.150 s with 8 MB (~16 MB pieces) when repeated in one process, but
# in a fresh process (what a user runs) the load went only from 0.158 s to 0.153 s (11 runs each).
CHUNK_SIZE = 1024 * 1024
# Which reader to use: auto (by size), whole or chunked (to compare them, or to debug).
LOADER_ENV = "TRACEKIT_LOADER"
WS = b" \t\n\r"  # JSON's whitespace (bytes.strip() would take \v and \f too)


def load_trace(
    path: str | os.PathLike[str],
    *,
    partial: bool = False,
    chunked_from: int | None = None,
) -> Trace:
    """Load one trace file. Raises ``TraceFormatError`` (a ``UserError``) on unusable input.

    Past ``chunked_from`` bytes of JSON (default ``TRACEKIT_CHUNKED_BYTES``, 32 MB) the event array
    is decoded chunk by chunk, never whole in memory; both readers give the same trace.

    The cyclic garbage collector is paused meanwhile: loading makes hundreds of thousands of
    objects and no cycles, and each collection would walk them all again.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load(Path(path), partial=partial, chunked_from=chunked_from)
    finally:
        if paused:
            gc.enable()


def _check_file(p: Path) -> tuple[int, bool]:
    """Refuse what is not a readable regular file (``fsutil.regular_file``); return its size and
    whether it is gzipped."""
    try:
        st = regular_file(p, "trace file")
    except UserError as exc:
        problem = str(exc).removeprefix(f"{p}: ")
        if "is a directory" in problem:
            problem = "is a directory, not a trace file (give a *.json or *.json.gz file)"
        raise TraceFormatError(str(p), problem) from None
    with open(p, "rb") as fh:
        return st.st_size, fh.read(2) == GZIP_MAGIC


def read_text(path: str | os.PathLike[str]) -> bytes:
    """The whole (decompressed) JSON text of a trace file, for code that rewrites the file; at
    most the inflate budget."""
    p = Path(path)
    _, gz = _check_file(p)
    _check_head(p, gz)
    budget, source = policy.inflate_budget()
    try:
        data, gz_error = _read_all(p, gz, limit=budget)
    except BudgetExceeded:
        raise policy.over_budget(str(p), budget, source) from None
    if gz_error is not None:
        raise policy.gzip_damaged(str(p), gz_error, has_prefix=bool(data.strip(WS)))
    if not data.strip(WS):
        raise policy.empty(str(p))
    return data


def decode_bytes(name: str, data: bytes) -> Trace:
    """A trace from its JSON text (as ``read_text`` gives it). Each span's ``origin`` is the
    position of its event in the document's event array."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return decode_text(name, data, partial=False, chunk_size=CHUNK_SIZE)
    finally:
        if paused:
            gc.enable()


def _load(p: Path, *, partial: bool, chunked_from: int | None) -> Trace:
    name = str(p)
    policy.check_env("TRACEKIT_CHUNKED_BYTES", "TRACEKIT_PARALLEL_BYTES")
    file_size, gz = _check_file(p)
    _check_head(p, gz)
    budget, source = policy.inflate_budget()
    threshold = CHUNKED_THRESHOLD if chunked_from is None else chunked_from
    size = _decompressed_size(p, gz, file_size)
    loader = os.environ.get(LOADER_ENV, "auto")
    try:
        if loader == "whole":
            return _load_whole(p, gz, partial=partial, limit=budget)
        if loader != "chunked" and size <= threshold:
            # The whole text in memory, up to twice the size that sends a file to the chunked
            # reader: a gzip whose size field lies is read in chunks from there on.
            try:
                return _load_whole(p, gz, partial=partial, limit=min(budget, 2 * threshold))
            except BudgetExceeded:
                if budget <= 2 * threshold:
                    raise
        # Large traces: decode chunk by chunk, so the text is never whole in memory.
        return _load_chunked(p, gz, partial=partial, budget=budget, size=size)
    except BudgetExceeded:
        raise policy.over_budget(name, budget, source) from None
    except TooDeep:
        raise policy.too_deep(name) from None


def _check_head(p: Path, gz: bool) -> None:
    """Refuse text that does not start like JSON from its first bytes, before inflating more."""
    try:
        with open_gz(p) if gz else open(p, "rb") as fh:
            head = fh.read(4096)
    except gz_errors:
        return  # damaged from the start: each path says so in its own place
    if head.strip(WS) and first_byte(head) not in (b"{", b"["):
        raise policy.not_json(str(p), head[:64])


def _load_whole(p: Path, gz: bool, *, partial: bool, limit: int) -> Trace:
    name = str(p)
    data, gz_error = _read_all(p, gz, limit=limit)
    if gz_error is not None:
        if not data.strip(WS):
            if partial:
                raise TraceFormatError(name, "corrupt gzip with no usable prefix")
            raise policy.gzip_damaged(name, gz_error, has_prefix=False)
        if not partial:
            # Damage in the text well before the gzip breaks comes first, as a streaming reader
            # meets it (damage at the very end is the cut itself: a number or word cut short).
            try:
                decode_text(name, data, partial=False, chunk_size=CHUNK_SIZE)
            except TraceFormatError as exc:
                at = error_byte(exc) if exc.kind == "json" else None
                if at is None and exc.kind == "json":  # invalid UTF-8: where the first bad byte is
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError as bad:
                        at = bad.start
                if exc.kind == "depth" or (at is not None and at < len(data) - 64):
                    raise
            raise policy.gzip_damaged(name, gz_error, has_prefix=True)
    elif not data.strip(WS):
        raise policy.empty(name)
    trace = decode_text(name, data, partial=partial or gz_error is not None, chunk_size=CHUNK_SIZE)
    trace.partial = trace.partial or gz_error is not None
    return trace


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


def _read_all(p: Path, gz: bool, *, limit: int) -> tuple[bytes, str | None]:
    """The whole text (at most ``limit`` bytes, else ``BudgetExceeded``); for a damaged gzip,
    the prefix that inflates and the error's name."""
    if not gz:
        if p.stat().st_size > limit:
            raise BudgetExceeded
        return p.read_bytes(), None
    try:
        return read_gz(p, limit), None
    except gz_errors as exc:
        d = zlib.decompressobj(wbits=31)
        try:
            prefix = d.decompress(p.read_bytes(), limit + 1)
        except zlib.error:
            prefix = b""
        if len(prefix) > limit:
            raise BudgetExceeded from None
        return prefix, exc.__class__.__name__


_flows_decoder = msgspec.json.Decoder(list[Union[FLOWS_ONLY]])  # type: ignore[valid-type]  # noqa: UP007


def _load_chunked(p: Path, gz: bool, *, partial: bool, budget: int, size: int) -> Trace:
    """The chunked msgspec path.

    With several cores the pieces are decoded and built in worker processes (``parallel``); a
    damaged file, or anything that path does not handle, is read here serially, which says exactly
    what is wrong. Flow events are skipped at first: launches link to their kernels by correlation
    id. Only when some launch or device event has no correlation id is the file read a second time
    for flows.
    """
    got = None
    if size > PARALLEL_BYTES:
        from tracekit.trace.parallel import load_parallel, usable_cores

        cores = usable_cores()
        # A worker a core: this process, which inflates and merges, is mostly waiting on them.
        got = load_parallel(p, gz, cores, budget) if cores > 1 else None
    damage: TraceFormatError | None = None
    if got is not None:
        builder, reader = got
    else:
        builder = TraceBuilder(str(p))
        passed = _chunked_pass(p, gz, SPANS_DECODER, builder.add, budget)
        if passed[0] is None:  # no event array: the whole-document decoder names what the file is
            return decode_text(str(p), passed[1], partial=partial, chunk_size=CHUNK_SIZE)
        reader, damage = passed
        if damage is not None and gz:
            # Damage in a gzip: the whole-text reader decides, once, for both paths (a broken gzip
            # stream loses the output of its last read; that reader keeps all that inflates).
            return _load_whole(p, gz, partial=partial, limit=budget)
    trace = builder.finish()
    if not builder.saw_flows and needs_flows(trace):
        flows: list[Any] = []

        def keep_flows(chunk: list[Any]) -> None:
            flows.extend(f for f in chunk if isinstance(f, FlowStart) and f.cat == "ac2g")

        _chunked_pass(p, gz, _flows_decoder, keep_flows, budget)
        link_flows(trace, flows)
    if damage is None:
        try:
            meta = reader.metadata()
        except Damaged as exc:
            damage = policy.damaged(str(p), str(exc))
        except TooDeep:
            raise policy.too_deep(str(p)) from None
        else:
            if meta is not None:
                trace.device_names, trace.rank = meta
    return _finish(trace, damage, partial=partial)


def _chunked_pass(
    p: Path, gz: bool, decoder: msgspec.json.Decoder[Any], take: Callable[[list[Any]], None], budget: int
) -> tuple[ChunkedReader, TraceFormatError | None] | tuple[None, bytes]:
    """Decode the file chunk by chunk, handing each chunk to ``take``. Returns the reader (for the
    metadata) and the damage met if any; or, for a document with no event array, None and its
    whole text."""
    damage: TraceFormatError | None = None
    with open_text(p, gz) as fh:
        reader = ChunkedReader(fh, chunk_size=CHUNK_SIZE, lenient=lenient_events, decoder=decoder, budget=budget)
        try:
            for chunk in reader.events():
                take(chunk)
        except NoEventArray as exc:
            return None, exc.text
        except GzipDamaged as exc:
            damage = policy.gzip_damaged(str(p), str(exc), has_prefix=True)
        except Damaged as exc:
            damage = policy.damaged(str(p), str(exc))
        except EmptyText:
            raise policy.empty(str(p)) from None
    return reader, damage


def _finish(trace: Trace, damage: TraceFormatError | None, *, partial: bool) -> Trace:
    """Shared end of the incremental loaders: a damaged file is an error unless --partial; an
    empty one always is."""
    if damage is not None:
        if not partial:
            raise damage
        trace.partial = True
    return usable(trace)
