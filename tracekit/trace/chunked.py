"""Decode a trace's event array in chunks with msgspec, so memory follows the kept events.

The decompressed text is read in pieces of ``chunk_size`` bytes; each piece is cut after the last
event that is complete in it and decoded as ``[...]`` into typed events. A cut is only a candidate
(the bytes ``}``, ``,``, ``{`` with optional whitespace between two objects); it is accepted when
the piece decodes, which proves it: a piece that ends inside an object, a nested list or a string
is not valid JSON. The text around the event array (``deviceProperties``, ``distributedInfo``) is
decoded on its own at the end.

Anything this reader does not expect raises ``Unchunkable`` and the caller decodes another way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import msgspec

from tracekit.trace.gz import ERRORS as gz_errors
from tracekit.trace.model import AnyEvent, TraceDoc

_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_LEADING_WS = re.compile(rb"\s*")
_events = msgspec.json.Decoder(list[AnyEvent])
T = TypeVar("T")
_meta = msgspec.json.Decoder(TraceDoc)


class Unchunkable(Exception):
    """The document's layout is not one this reader handles; decode it whole instead."""


class Damaged(Exception):
    """The text ends or breaks inside the event array (a truncated file)."""


def content_start(data: bytes | bytearray, end: int | None = None) -> int:
    """Where ``data[:end]`` stops being whitespace."""
    lead = _LEADING_WS.match(data, 0, len(data) if end is None else end)
    return lead.end() if lead else 0


def first_byte(data: bytes) -> bytes:
    """The first non-whitespace byte (b"" if none), without copying the buffer."""
    start = content_start(data)
    return data[start : start + 1]


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class ChunkedReader:
    """Yields the events of a trace's text, a chunk at a time.

    The text goes through one buffer of about twice ``chunk_size``, filled with ``readinto`` where
    the stream has it: no new buffer per chunk, so reading costs no fresh memory (page faults
    were a fifth of a load's time when every chunk was a new 8 MB ``bytes``).
    """

    stream: Readable
    chunk_size: int = 8 << 20
    lenient: Callable[[bytes], list[AnyEvent]] | None = None
    decoder: msgspec.json.Decoder[Any] = field(default_factory=lambda: _events)
    head: bytes = b""
    tail: bytes = b""
    list_form: bool = False
    chunks: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._buf = bytearray(2 * self.chunk_size + 1)
        self._lo = 0  # the valid text is _buf[_lo:_hi]
        self._hi = 0
        self._eof = False
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
                raise Damaged(f"{exc.__class__.__name__}: {exc}") from None
            if not n:
                self._eof = True
            self._hi += n

    def _make_room(self, want: int) -> None:
        """Move the valid text to the front; grow the buffer if it still cannot take ``want`` more."""
        n = self._hi - self._lo
        if self._lo:
            with memoryview(self._buf) as mv:
                mv[:n] = mv[self._lo : self._hi]
            self._lo, self._hi = 0, n
        if n >= len(self._buf) or want >= len(self._buf):
            self._buf.extend(bytes(max(len(self._buf), want - len(self._buf) + 1)))

    def _open_array(self) -> None:
        """Read up to the event array's ``[`` (a ``{"traceEvents": [`` document or a bare list)."""
        self._fill(self.chunk_size)
        buf = self._buf
        start = content_start(buf, self._hi)
        first = bytes(buf[start : min(start + 1, self._hi)])
        if first == b"[":
            self.list_form = True
            self._lo = start
        elif first == b"{":
            while True:
                m = _EVENTS_KEY.search(buf, 0, self._hi)
                if m is not None:
                    break
                if self._eof or self._hi > 8 * self.chunk_size:
                    raise Unchunkable("no traceEvents array near the start")
                self._fill(self._hi + self.chunk_size)
                buf = self._buf
            self.head = bytes(buf[: m.end() - 1])
            self._lo = m.end() - 1
        else:
            raise Unchunkable("not a JSON object or array")

    def _pieces(self, cut: Callable[[], tuple[T, int] | None]) -> Iterator[T | list[AnyEvent]]:
        """The event array piece by piece: ``cut`` takes the text from ``_lo`` to a boundary; the
        final piece is decoded here (``_last``), whatever ``cut`` returns."""
        self._open_array()
        # _buf[_lo] is always the array's '[' (or a '[' written over the separator before the
        # next event), so each piece decodes in place: no copy of the text is made to decode it.
        while True:
            self._fill(self.chunk_size)
            if self._eof:
                yield self._last()
                return
            got = cut()
            if got is None:  # one event longer than a chunk: read on
                self._fill(self._hi - self._lo + self.chunk_size)
                if self._eof:
                    yield self._last()
                    return
                continue
            piece, rest = got
            self._buf[rest - 1] = 0x5B  # '[' over the separator before the next event
            self._lo = rest - 1
            self.chunks += 1
            yield piece

    def events(self) -> Iterator[list[AnyEvent]]:
        """Decoded events, a chunk at a time (each chunk's cut proven by decoding it)."""
        yield from self._pieces(self._cut)

    def texts(self) -> Iterator[bytes | list[AnyEvent]]:
        """The event array as pieces of text (``[...]``, each to be decoded elsewhere), cut at the
        last candidate boundary of each chunk, and the final piece decoded. A cut is only proven
        when its piece decodes: the caller must treat a piece that does not decode as a wrong cut."""
        yield from self._pieces(self._raw_cut)

    def _decode(self, text: memoryview | bytes) -> list[AnyEvent]:
        try:
            events: list[AnyEvent] = self.decoder.decode(text)
            return events
        except msgspec.ValidationError:
            if self.lenient is None:
                raise
            return self.lenient(bytes(text))

    def _cut(self) -> tuple[list[AnyEvent], int] | None:
        """Decode the events before the last boundary that proves valid; return them and where the
        next event starts."""
        buf, lo = self._buf, self._lo
        pos = self._hi
        tries = 0
        while tries < 64:
            i = buf.rfind(b"}", lo, pos)
            if i < 0:
                return None
            m = _BOUNDARY.match(buf, i, self._hi)
            pos = i
            if m is None:
                continue
            tries += 1
            saved = buf[i + 1]
            buf[i + 1] = 0x5D  # ']' over the separator (a ',' or whitespace) just after the '}'
            try:
                with memoryview(buf) as mv:
                    events = self._decode(mv[lo : i + 2])
            except msgspec.DecodeError:
                continue  # the candidate sat inside an event: try an earlier one
            finally:
                buf[i + 1] = saved
            return events, m.end() - 1
        raise Unchunkable("no event boundary decoded in 64 tries")

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
                return bytes(buf[lo : i + 1]) + b"]", m.end() - 1
            pos = i

    def _last(self) -> list[AnyEvent]:
        """The final piece: events up to the array's closing bracket, then the document's tail."""
        buf, lo = self._buf, self._lo
        pos = self._hi
        for _ in range(64):
            j = buf.rfind(b"]", lo, pos)
            if j <= lo:
                break
            pos = j
            tail = bytes(buf[j + 1 : self._hi])
            if self.list_form:
                if tail.strip():
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
        raise Damaged("the event array is not closed (truncated JSON)")

    def metadata(self) -> TraceDoc | None:
        if self.list_form:
            return None
        try:
            return _meta.decode(self.head + b"[]" + self.tail)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
