"""The whole-file reader: a trace's JSON text read into memory at once and decoded typed, then
event by event where the typed table does not fit.

It is one of the two readers ``load`` chooses between (the other is ``chunked``); it knows nothing
of the other. Damaged text raises ``DamagedText``, which carries the text read, for the caller to
salvage the events before the damage (``--partial``) as it sees fit.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import msgspec
from msgspec import UnsetType

from tracekit.errors import TraceFormatError
from tracekit.trace.build import build_trace
from tracekit.trace.model import AnyEvent, Trace, TraceDoc
from tracekit.trace.read import errors
from tracekit.trace.read.errors import BudgetExceeded, TooDeep
from tracekit.trace.read.lenient import lenient_doc, lenient_records
from tracekit.trace.read.text import BOM, WS, first_byte, open_gz
from tracekit.trace.read.text import ERRORS as gz_errors

_doc_decoder = msgspec.json.Decoder(TraceDoc)
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_list_decoder = msgspec.json.Decoder(list[AnyEvent])
# Damage this close to the end of a broken gzip's text is the cut itself (a number or word cut short).
_CUT_SLACK = 64


class DamagedText(Exception):
    """Invalid or truncated text: ``error`` says what is wrong; ``text`` is the JSON text as far as
    it could be read; ``refusal``, for a broken gzip, what the prefix's own shape says is wrong
    with it (not JSON, not a trace), which outranks salvaging its events."""

    def __init__(
        self, error: TraceFormatError, text: bytes | memoryview, refusal: TraceFormatError | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.text = text
        self.refusal = refusal


def read(p: Path, gz: bool, *, limit: int, isal: bool) -> Trace:
    """The trace in file ``p``, its text read whole: at most ``limit`` bytes (else
    ``BudgetExceeded``). Raises ``TraceFormatError`` for what is not a trace, ``DamagedText`` for
    a damaged one (a broken gzip whose prefix inflates included) and ``TooDeep``."""
    name = str(p)
    data, gz_error = read_all(p, gz, limit=limit, isal=isal)
    if gz_error is None:
        if not data.strip(WS):
            raise errors.empty(name)
        return decode_text(name, data)
    if not data.strip(WS):
        raise errors.gzip_damaged(name, gz_error, has_prefix=False)
    # Damage in the text well before the gzip breaks comes first, as a streaming reader meets it.
    refusal = None
    try:
        decode_text(name, data)
    except DamagedText as exc:
        at = exc.error.offset
        if at is None and exc.error.kind == "json":  # invalid UTF-8: where the first bad byte is
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                at = bad.start
        if at is not None and at < len(data) - _CUT_SLACK:
            raise
    except TraceFormatError as exc:
        refusal = exc  # the broken gzip comes first; the prefix's shape only where its events are wanted
    raise DamagedText(errors.gzip_damaged(name, gz_error, has_prefix=True), data, refusal)


def read_all(p: Path, gz: bool, *, limit: int, isal: bool) -> tuple[bytes, str | None]:
    """The whole text (at most ``limit`` bytes, else ``BudgetExceeded``); for a damaged gzip,
    the prefix that inflates and the error's name."""
    if not gz:
        if p.stat().st_size > limit:
            raise BudgetExceeded
        return p.read_bytes(), None
    try:
        return read_gz(p, limit, isal=isal), None
    except gz_errors as exc:
        d = zlib.decompressobj(wbits=31)
        try:
            prefix = d.decompress(p.read_bytes(), limit + 1)
        except zlib.error:
            prefix = b""
        if len(prefix) > limit:
            raise BudgetExceeded from None
        return prefix, exc.__class__.__name__


def decode_text(name: str, data: bytes) -> Trace:
    """A trace from the whole JSON text of a file. Raises ``DamagedText`` (with the text after any
    byte-order mark) on invalid or truncated JSON, ``TooDeep`` on JSON nested too deep."""
    text: bytes | memoryview = memoryview(data)[3:] if data[:3] == BOM else data
    first = first_byte(data)
    if first not in (b"{", b"["):
        raise errors.not_json(name, bytes(data[:64]))
    try:
        try:
            return _decode_typed(name, text, first)
        except msgspec.ValidationError as exc:
            _refuse_layout(name, exc)
            # Some events have fields of unexpected types: decode leniently, event by event.
            return _decode_lenient(name, text)
    except msgspec.DecodeError as exc:
        raise DamagedText(errors.damaged(name, errors.damage(exc)), text) from None
    except RecursionError:
        raise TooDeep from None


def _decode_typed(name: str, text: bytes | memoryview, first: bytes) -> Trace:
    if first == b"{":
        doc = _doc_decoder.decode(text)
        trace = build_trace(name, doc.traceEvents)
        trace.device_names, trace.rank = doc.metadata()
        return trace
    return build_trace(name, _list_decoder.decode(text))


def _refuse_layout(name: str, exc: msgspec.ValidationError) -> None:
    """A typed-decode failure that no event-by-event decode can fix: the document's shape."""
    shape = errors.layout(exc)
    if shape == "no-events":
        raise errors.no_event_array(name)
    if shape == "events-not-a-list":
        raise errors.events_not_a_list(name)


def _decode_lenient(name: str, text: bytes | memoryview) -> Trace:
    try:
        doc = lenient_doc.decode(text)
    except msgspec.ValidationError as exc:
        if not errors.not_an_object(exc):
            raise errors.events_not_a_list(name) from None
        return build_trace(name, lenient_records(_raw_list.decode(text)))
    if isinstance(doc.traceEvents, UnsetType):
        raise errors.no_event_array(name)
    names, rank = doc.metadata()
    trace = build_trace(name, lenient_records(doc.traceEvents))
    trace.device_names, trace.rank = names, rank
    return trace


def read_gz(path: Path, limit: int = 1 << 62, *, isal: bool = True) -> bytes:
    """The whole decompressed content (raises one of ``ERRORS`` on a damaged file, and
    ``BudgetExceeded`` past ``limit`` bytes, having inflated at most 16 MB more)."""
    out = bytearray()
    with open_gz(path, isal=isal) as fh:
        while block := fh.read(1 << 24):
            out += block
            if len(out) > limit:
                raise BudgetExceeded
    return bytes(out)
