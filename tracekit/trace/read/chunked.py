"""The chunked reader: a trace file's event array decoded a piece at a time
(``pieces.ChunkedReader``), so the text is never whole in memory and memory follows the kept events.

It is one of the two readers ``load`` chooses between (the other is ``whole``); it knows nothing
of the other. ``read_spans`` reads a file's spans serially, ``complete`` adds what a second pass
and the text around the event array give (flows where ids are missing, device names, rank), and
``salvage`` keeps the events before the damage in a text already in memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import msgspec

from tracekit.errors import TraceFormatError
from tracekit.trace.build import TraceBuilder
from tracekit.trace.links import link_flows, needs_flows
from tracekit.trace.model import FLOWS_ONLY, SPANS_DECODER, FlowStart, Trace
from tracekit.trace.read import errors
from tracekit.trace.read.errors import Damaged, EmptyText, NoEventArray
from tracekit.trace.read.lenient import lenient_events
from tracekit.trace.read.options import ReadOptions
from tracekit.trace.read.pieces import ChunkedReader
from tracekit.trace.read.text import open_text


@dataclass
class Spans:
    """A file's spans as read so far: the builder holding them, the reader (for the text around
    the event array), and the damage met, if any (the events before it are in the builder)."""

    builder: TraceBuilder
    reader: ChunkedReader
    damage: TraceFormatError | None = None


_flows_decoder = msgspec.json.Decoder(list[Union[FLOWS_ONLY]])  # type: ignore[valid-type]  # noqa: UP007


def read_spans(p: Path, gz: bool, budget: int, options: ReadOptions) -> Spans:
    """Decode ``p``'s event array chunk by chunk into a builder, skipping flows (launches link to
    their kernels by correlation id). Raises ``NoEventArray`` for a document without one,
    ``GzipDamaged`` for a broken gzip stream (whose last read is lost here), ``BudgetExceeded``,
    ``TooDeep`` and ``TraceFormatError`` (empty text)."""
    builder = TraceBuilder(str(p), options.max_names)
    reader, damage = _pass(p, gz, SPANS_DECODER, builder.add, budget, options)
    return Spans(builder, reader, damage)


def complete(
    spans: Spans, p: Path, gz: bool, budget: int, options: ReadOptions
) -> tuple[Trace, TraceFormatError | None]:
    """The trace the spans make, with flows read in a second pass where some launch or device
    event has no correlation id, and the device names and rank from around the event array; and
    the damage met, if any."""
    builder, damage = spans.builder, spans.damage
    trace = builder.finish()
    if not builder.saw_flows and needs_flows(trace):
        flows: list[Any] = []

        def keep_flows(chunk: list[Any]) -> None:
            flows.extend(f for f in chunk if isinstance(f, FlowStart) and f.cat == "ac2g")

        _pass(p, gz, _flows_decoder, keep_flows, budget, options)
        link_flows(trace, flows)
    if damage is None:
        try:
            meta = spans.reader.metadata()
        except Damaged as exc:
            damage = errors.damaged(str(p), exc.damage)
        else:
            if meta is not None:
                trace.device_names, trace.rank = meta
    return trace, damage


def _pass(
    p: Path,
    gz: bool,
    decoder: msgspec.json.Decoder[Any],
    take: Callable[[list[Any]], None],
    budget: int,
    options: ReadOptions,
) -> tuple[ChunkedReader, TraceFormatError | None]:
    """Decode the file chunk by chunk, handing each chunk to ``take``; the reader and the damage met."""
    with open_text(p, gz, isal=options.isal) as fh:
        reader = ChunkedReader(
            fh, chunk_size=options.chunk_bytes, lenient=lenient_events, decoder=decoder, budget=budget
        )
        try:
            for chunk in reader.events():
                take(chunk)
        except Damaged as exc:
            return reader, errors.damaged(str(p), exc.damage)
        except EmptyText:
            raise errors.empty(str(p)) from None
    return reader, None


def salvage(name: str, text: bytes | memoryview, options: ReadOptions) -> Trace:
    """The events before the damage in a damaged text already in memory, as this reader finds them
    reading the file (``TooDeep`` if the JSON nests too deep)."""
    builder = TraceBuilder(name, options.max_names)
    try:
        for chunk in ChunkedReader(io.BytesIO(text), chunk_size=options.chunk_bytes, lenient=lenient_events).events():
            builder.add(chunk)
    except (Damaged, NoEventArray, EmptyText):
        pass
    return builder.finish()
