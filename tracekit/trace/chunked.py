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
from typing import IO

import msgspec

from tracekit.trace.gz import ERRORS as gz_errors
from tracekit.trace.model import AnyEvent, TraceDoc

_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_LEADING_WS = re.compile(rb"\s*")
_events = msgspec.json.Decoder(list[AnyEvent])
_meta = msgspec.json.Decoder(TraceDoc)


class Unchunkable(Exception):
    """The document's layout is not one this reader handles; decode it whole instead."""


class Damaged(Exception):
    """The text ends or breaks inside the event array (a truncated file)."""


@dataclass
class ChunkedReader:
    stream: IO[bytes]
    chunk_size: int = 8 << 20
    lenient: Callable[[bytes], list[AnyEvent]] | None = None
    head: bytes = b""
    tail: bytes = b""
    list_form: bool = False
    chunks: int = field(default=0, init=False)

    def _read(self) -> bytes:
        try:
            return self.stream.read(self.chunk_size)
        except gz_errors as exc:  # gzip truncated or corrupt
            raise Damaged(f"{exc.__class__.__name__}: {exc}") from None

    def events(self) -> Iterator[list[AnyEvent]]:
        first = self._read()
        lead = _LEADING_WS.match(first)
        start = lead.end() if lead else 0
        if first[start : start + 1] == b"[":
            self.list_form = True
            at = start
        elif first[start : start + 1] == b"{":
            while True:
                m = _EVENTS_KEY.search(first)
                if m is not None:
                    break
                more = self._read()
                if not more or len(first) > 8 * self.chunk_size:
                    raise Unchunkable("no traceEvents array near the start")
                first += more
            self.head = first[: m.end() - 1]
            at = m.end() - 1
        else:
            raise Unchunkable("not a JSON object or array")
        # The buffer always starts with the array's '[' (or a '[' written over the separator before
        # the next event), so each piece decodes in place: no copy of the text is made to decode it.
        buf = bytearray(first[at:])
        del first
        eof = False
        while True:
            while not eof and len(buf) < self.chunk_size:
                more = self._read()
                if not more:
                    eof = True
                buf += more
            if eof:
                yield self._last(buf)
                return
            cut = self._cut(buf)
            if cut is None:  # one event longer than a chunk: read on
                more = self._read()
                if not more:
                    eof = True
                buf += more
                continue
            events, rest = cut
            buf[rest - 1] = 0x5B  # '[' over the separator before the next event
            del buf[: rest - 1]
            self.chunks += 1
            yield events

    def _decode(self, text: memoryview | bytes) -> list[AnyEvent]:
        try:
            return _events.decode(text)
        except msgspec.ValidationError:
            if self.lenient is None:
                raise
            return self.lenient(bytes(text))

    def _cut(self, buf: bytearray) -> tuple[list[AnyEvent], int] | None:
        """Decode the events before the last boundary that proves valid; return them and where the
        next event starts."""
        pos = len(buf)
        tries = 0
        while tries < 64:
            i = buf.rfind(b"}", 0, pos)
            if i < 0:
                return None
            m = _BOUNDARY.match(buf, i)
            pos = i
            if m is None:
                continue
            tries += 1
            saved = buf[i + 1]
            buf[i + 1] = 0x5D  # ']' over the separator (a ',' or whitespace) just after the '}'
            try:
                with memoryview(buf) as mv:
                    events = self._decode(mv[: i + 2])
            except msgspec.DecodeError:
                continue  # the candidate sat inside an event: try an earlier one
            finally:
                buf[i + 1] = saved
            return events, m.end() - 1
        raise Unchunkable("no event boundary decoded in 64 tries")

    def _last(self, buf: bytearray) -> list[AnyEvent]:
        """The final piece: events up to the array's closing bracket, then the document's tail."""
        pos = len(buf)
        for _ in range(64):
            j = buf.rfind(b"]", 0, pos)
            if j <= 0:
                break
            pos = j
            tail = bytes(buf[j + 1 :])
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
                    events = self._decode(mv[: j + 1])
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
