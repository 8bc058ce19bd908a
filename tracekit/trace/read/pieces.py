"""The event array of a trace's text, cut into pieces that each decode: the chunked reader's engine.

The decompressed text is read into a buffer of twice ``chunk_size``; each fill is cut after the
last event that is complete in it and decoded as ``[...]`` into typed events. A cut is only a
candidate (the bytes ``}``, ``,``, ``{`` with optional whitespace between two objects); it is
accepted when the piece decodes, which proves it: a piece that ends inside an object, a nested list
or a string is not valid JSON. Where 64 candidates in a row fall inside one event, a structural
scan (``event_ends``) finds the real ends. The text around the event array (``deviceProperties``,
``distributedInfo``) is decoded on its own at the end (``ChunkedReader.metadata``).

A document whose event array is not found is handed back whole (``NoEventArray``). Damage raises
``Damaged`` with the decoder's own words and the byte offset in the whole text, once the events
before it are out, so the message is the one the whole-file reader gives for the same file. The
text read is counted against the inflate budget (``BudgetExceeded``); a run of whitespace between
events is skipped, not buffered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec
import numpy as np

if TYPE_CHECKING:  # annotations only: numpy.typing costs start-up time
    from numpy.typing import NDArray

from tracekit.trace.model import AnyEvent, TraceDoc
from tracekit.trace.read import errors
from tracekit.trace.read.errors import (
    TRUNCATED,
    BudgetExceeded,
    Damage,
    Damaged,
    EmptyText,
    GzipDamaged,
    NoEventArray,
    TooDeep,
)
from tracekit.trace.read.lenient import lenient_doc
from tracekit.trace.read.text import BOM, LEADING_WS, WS
from tracekit.trace.read.text import ERRORS as gz_errors

_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
_BOUNDARY = re.compile(rb"\}[ \t\n\r]*,[ \t\n\r]*\{")
_events = msgspec.json.Decoder(list[AnyEvent])
T = TypeVar("T")
_meta = msgspec.json.Decoder(TraceDoc)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class ChunkedReader:
    """Yields the events of a trace's text, a chunk at a time.

    The text goes through one buffer of about twice ``chunk_size``, filled with ``readinto`` where
    the stream has it: no new buffer per chunk, so reading touches no fresh memory.
    """

    stream: Readable
    chunk_size: int  # ReadOptions.chunk_bytes (piece_bytes in the parallel reader)
    lenient: Callable[[bytes], list[AnyEvent]] | None = None
    decoder: msgspec.json.Decoder[Any] = field(default_factory=lambda: _events)
    head: bytes = b""
    tail: bytes = b""
    list_form: bool = False
    budget: int = 1 << 62
    chunks: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._buf = bytearray(2 * self.chunk_size + 1)
        self._lo = 0  # the valid text is _buf[_lo:_hi]
        self._hi = 0
        self._offset = 0  # where _buf[0] lies in the text (after a byte-order mark), for error offsets
        self._total = 0
        self._eof = False
        self._damage: Damage | None = None  # met while cutting; raised once the events before it are out
        self._readinto = getattr(self.stream, "readinto", None)

    def _fill(self, want: int) -> None:
        """Read until the buffer holds ``want`` bytes from ``_lo`` (or the text ends)."""
        while not self._eof and self._hi - self._lo < want:
            if self._hi == len(self._buf):
                self._make_room(want)
            try:
                if self._readinto is not None:
                    with memoryview(self._buf) as mv:
                        n = self._readinto(mv[self._hi :])
                else:
                    data = self.stream.read(len(self._buf) - self._hi)
                    n = len(data)
                    self._buf[self._hi : self._hi + n] = data
            except gz_errors as exc:  # gzip truncated or corrupt
                raise GzipDamaged(exc.__class__.__name__) from None
            if not n:
                self._eof = True
            self._hi += n
            self._total += n
            if self._total > self.budget:
                raise BudgetExceeded

    def _make_room(self, want: int) -> None:
        """Move the valid text to the front; grow the buffer if it cannot take ``want`` more, and
        shrink it back once a longer event has gone (else every later piece is as long as it was)."""
        n = self._hi - self._lo
        usual = 2 * self.chunk_size + 1
        if len(self._buf) > usual and max(n, want) < usual:
            smaller = bytearray(usual)
            with memoryview(self._buf) as mv:
                smaller[:n] = mv[self._lo : self._hi]
            self._buf = smaller
        elif self._lo:
            with memoryview(self._buf) as mv:
                mv[:n] = mv[self._lo : self._hi]
        self._offset += self._lo
        self._lo, self._hi = 0, n
        if n >= len(self._buf) or want >= len(self._buf):
            self._buf.extend(bytes(max(len(self._buf), want - len(self._buf) + 1)))

    def _skip_whitespace(self) -> int:
        """Skip leading whitespace (and a byte-order mark) however long it runs; return where the
        content starts."""
        self._fill(self.chunk_size)
        if self._buf[:3] == BOM:
            self._lo, self._offset = 3, -3
        while True:
            lead = LEADING_WS.match(self._buf, self._lo, self._hi)
            start = lead.end() if lead else self._lo
            if start < self._hi:
                return start
            if self._eof:
                raise EmptyText
            self._lo = self._hi  # all whitespace: let the next fill reuse the buffer
            self._fill(self.chunk_size)

    def _blank_run(self) -> bool:
        """Whether all that follows the '[' at ``_lo`` is whitespace; if so, move the '[' to the
        end of it, so a flood of whitespace is never buffered (offsets stay exact)."""
        if self._hi - self._lo <= 1:
            return False
        lead = LEADING_WS.match(self._buf, self._lo + 1, self._hi)
        if lead is None or lead.end() < self._hi:
            return False
        self._buf[self._hi - 1] = 0x5B
        self._lo = self._hi - 1
        return True

    def _find_array(self, start: int) -> None:
        """Put ``_lo`` on the event array's '[' (keeping the document's head)."""
        first = bytes(self._buf[start : start + 1])
        self._lo = start
        if first == b"[":
            self.list_form = True
            return
        if first != b"{":
            raise NoEventArray(bytes(self._buf[start : self._hi]))
        while (m := _EVENTS_KEY.search(self._buf, self._lo, self._hi)) is None:
            if self._eof:
                raise NoEventArray(bytes(self._buf[self._lo : self._hi]))
            self._fill(self._hi - self._lo + self.chunk_size)
        self.head = bytes(self._buf[self._lo : m.end() - 1])
        self._check_head(self._offset + self._lo)
        self._lo = m.end() - 1

    def _check_head(self, at: int) -> None:
        """Damage before the event array is damage too (the whole-document decoder meets it
        first): decode the head closed with an empty array, as that decoder would."""
        try:
            frame(self.head + b"[]}")
        except msgspec.DecodeError as exc:
            where = errors.offset(exc)
            if where is None or where <= len(self.head):
                raise Damaged(errors.damage(exc, at)) from None
        except RecursionError:
            raise TooDeep from None

    def _pieces(self, cut: Callable[[], tuple[T, int] | None]) -> Iterator[T | list[AnyEvent]]:
        """The event array piece by piece: ``cut`` takes the text from ``_lo`` to a boundary; the
        final piece is decoded here (``_last``), whatever ``cut`` returns."""
        self._find_array(self._skip_whitespace())
        # _buf[_lo] is always the array's '[' (or a '[' written over the separator before the
        # next event), so each piece decodes in place: no copy of the text is made to decode it.
        while True:
            self._fill(self.chunk_size)
            if self._eof:
                yield self._last()
                break
            got = cut()
            if got is None:
                if self._damage is not None:
                    break
                # One event longer than a chunk, or a run of whitespace: read on.
                if not self._blank_run():
                    self._fill(self._hi - self._lo + self.chunk_size)
                continue
            piece, rest = got
            self._buf[rest - 1] = 0x5B  # '[' over the separator before the next event
            self._lo = rest - 1
            self.chunks += 1
            yield piece
            if self._damage is not None:
                break
        if self._damage is not None:
            raise Damaged(self._damage)

    def events(self) -> Iterator[list[AnyEvent]]:
        """Decoded events, a chunk at a time (each chunk's cut proven by decoding it)."""
        yield from self._pieces(self._cut)

    def texts(self) -> Iterator[bytes | list[AnyEvent]]:
        """The event array as pieces of text (``[...]``, each to be decoded elsewhere), cut at the
        last candidate boundary of each chunk, and the final piece decoded. A cut is only proven
        when its piece decodes: the caller must treat a piece that does not decode as a wrong cut
        (or damage), and read the file with ``events`` to learn which."""
        yield from self._pieces(self._raw_cut)

    def _raw_cut(self) -> tuple[bytes, int] | None:
        """The text before the last candidate boundary (copied, closed with ``]``), and where the next
        event starts."""
        buf, lo = self._buf, self._lo
        pos = self._hi
        while True:
            i = buf.rfind(b"}", lo, pos)
            if i < 0:
                return None
            m = _BOUNDARY.match(buf, i, self._hi)
            if m is not None:
                saved = buf[i + 1]
                buf[i + 1] = 0x5D  # ']' over the separator: the piece is copied out in one go
                with memoryview(buf) as mv:
                    piece = bytes(mv[lo : i + 2])
                buf[i + 1] = saved
                return piece, m.end() - 1
            pos = i

    def _decode(self, text: memoryview | bytes) -> list[AnyEvent]:
        try:
            try:
                events: list[AnyEvent] = self.decoder.decode(text)
                return events
            except msgspec.ValidationError:
                if self.lenient is None:
                    raise
                return self.lenient(bytes(text))
        except RecursionError:
            raise TooDeep from None

    def _try(self, end: int) -> list[AnyEvent] | None:
        """Decode ``_buf[_lo:end+1]`` with a ']' after the '}' at ``end``; None if that fails (and
        note the damage if the text itself is at fault)."""
        buf, lo = self._buf, self._lo
        saved = buf[end + 1]
        buf[end + 1] = 0x5D  # ']' over the separator (a ',' or whitespace) just after the '}'
        try:
            with memoryview(buf) as mv:
                return self._decode(mv[lo : end + 2])
        except msgspec.DecodeError as exc:
            if self._damage is None and errors.text_at_fault(exc, end - lo):
                self._damage = errors.damage(exc, self._offset + lo)
            return None
        finally:
            buf[end + 1] = saved

    def _cut(self) -> tuple[list[AnyEvent], int] | None:
        """Decode the events before the last boundary that proves valid; return them and where the
        next event starts (None: no complete event here, or none before the damage)."""
        buf, lo, hi = self._buf, self._lo, self._hi
        pos, tries = hi, 0
        while tries < 64:
            i = buf.rfind(b"}", lo, pos)
            if i < 0:
                return None
            pos = i
            m = _BOUNDARY.match(buf, i, hi)
            if m is None:
                continue
            tries += 1
            if self._damage is not None and self._damage.at is not None and self._damage.at < self._offset + i:
                continue  # after the damage: only a cut before it can decode
            events = self._try(i)
            if events is not None:
                return events, m.end() - 1
        with memoryview(buf) as mv:  # 64 candidates inside one event: find the real ends
            ends = event_ends(mv[lo:hi])
        for e in ends[::-1].tolist():
            m = _BOUNDARY.match(buf, lo + e, hi)
            if m is not None:
                events = self._try(lo + e)
                if events is not None:
                    return events, m.end() - 1
        return None

    def _last(self) -> list[AnyEvent]:
        """The final piece: events up to the array's closing bracket, then the document's tail.
        If it is damaged, the events before the damage (and the damage is noted)."""
        buf, lo = self._buf, self._lo
        pos = self._hi
        for _ in range(64):
            j = buf.rfind(b"]", lo, pos)
            if j <= lo:
                break
            pos = j
            tail = bytes(buf[j + 1 : self._hi])
            if self.list_form:
                if tail.strip(WS):
                    continue
            else:
                try:
                    msgspec.json.decode(b'{"_":0' + tail)
                except msgspec.DecodeError:
                    continue
            try:
                with memoryview(buf) as mv:
                    events = self._decode(mv[lo : j + 1])
            except msgspec.DecodeError:
                continue
            self.tail = tail
            return events
        self._damage, before = self._diagnose()
        if before is not None:
            return before
        cut = self._cut()
        return [] if cut is None else cut[0]

    def _diagnose(self) -> tuple[Damage, list[AnyEvent] | None]:
        """The decoder's own words for what is wrong with the last piece and the document's tail,
        with the offset in the whole text (as decoding the whole document would say); and the
        piece's events when the damage lies after the array."""
        lo, hi = self._lo, self._hi
        try:
            with memoryview(self._buf) as mv:
                return Damage(TRUNCATED, None), self._decode(mv[lo:hi])
        except msgspec.DecodeError as exc:
            at = errors.offset(exc)
            if at is None or not errors.ends_early(exc):
                return errors.damage(exc, self._offset + lo), None
            # The array closed before ``at`` (msgspec names the byte after the first one that
            # follows a value): the damage is in the rest of the document.
            rest = lo + at - 1
            with memoryview(self._buf) as mv:
                events = self._decode(mv[lo:rest])
            if self.list_form:
                return errors.damage(exc, self._offset + lo), events
            try:
                msgspec.json.decode(b'{"_":0' + bytes(self._buf[rest:hi]))
            except msgspec.DecodeError as tail_exc:
                return errors.damage(tail_exc, self._offset + rest - 6), events
            return Damage(TRUNCATED, None), events

    def metadata(self) -> tuple[list[str], int | None] | None:
        """Device names and rank from the text around the event array (None for a bare array);
        raises ``Damaged`` where the whole-document decoder would."""
        if self.list_form:
            return None
        try:
            return frame(self.head + b"[]" + self.tail)
        except msgspec.DecodeError as exc:
            raise Damaged(errors.damage(exc)) from None
        except RecursionError:
            raise TooDeep from None


def event_ends(piece: bytes | bytearray | memoryview) -> NDArray[np.int64]:
    """Offsets of the ``}`` that end the array's elements, for a piece starting at its ``[``."""
    a = np.frombuffer(piece, np.uint8)
    n = len(a)
    if n == 0:
        return np.empty(0, np.int64)
    idx = np.arange(n)
    last_other = np.maximum.accumulate(np.where(a != 92, idx, -1))  # last non-backslash at or before i
    run = np.zeros(n, np.int64)  # backslashes just before position i
    run[1:] = idx[:-1] - last_other[:-1]
    quotes = (a == 34) & (run % 2 == 0)
    outside = np.cumsum(quotes) % 2 == 0
    opens = ((a == 123) | (a == 91)) & outside
    closes = ((a == 125) | (a == 93)) & outside
    depth = np.cumsum(opens.astype(np.int64) - closes)
    return np.flatnonzero((a == 125) & closes & (depth == 1))


def frame(text: bytes) -> tuple[list[str], int | None]:
    """The metadata of a document with its events left out, read typed and, where the types do
    not fit, leniently (``DecodeError`` on damage either way)."""
    try:
        return _meta.decode(text).metadata()
    except msgspec.ValidationError:
        return lenient_doc.decode(text).metadata()
