"""The raw document: a trace file as generic JSON, for code that rewrites the file (the Perfetto
export, the HTA bridge) rather than analyzes it. Read through the same reader as ``load``, under
the same input policy and in the same words (``errors``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import msgspec

from tracekit.trace.read import errors
from tracekit.trace.read.load import read_text
from tracekit.trace.read.options import ReadOptions
from tracekit.trace.read.text import BOM, first_byte

# A float too large for a double reads as infinity instead of failing the whole document.
_untyped = msgspec.json.Decoder(float_hook=float)


def _decode(text: bytes | memoryview) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.ValidationError:  # a number out of range for a double: read it as infinity
        return _untyped.decode(text)


@dataclass
class RawDocument:
    text: bytes  # the (decompressed) JSON
    doc: dict[str, Any]  # the document; a list-form trace is wrapped as {"traceEvents": [...]}

    @property
    def events(self) -> list[Any]:
        events: list[Any] = self.doc["traceEvents"]
        return events


def read_document(path: str | os.PathLike[str], options: ReadOptions | None = None) -> RawDocument:
    name = str(path)
    text = read_text(path, options)
    body: bytes | memoryview = memoryview(text)[3:] if text[:3] == BOM else text
    first = first_byte(text)
    if first not in (b"{", b"["):
        raise errors.not_json(name, bytes(body[:64]))
    try:
        doc = _decode(body)
    except msgspec.DecodeError as exc:
        if not errors.bad_utf8(exc):
            raise errors.damaged(name, errors.damage(exc)) from None
        # The loader lets invalid UTF-8 pass in fields it skips (and names it where it reads
        # one); the rewritten document carries U+FFFD for such bytes.
        doc = _decode(bytes(body).decode("utf-8", "replace").encode())
    except RecursionError:
        raise errors.too_deep(name) from None
    if isinstance(doc, list):
        doc = {"traceEvents": doc}
    if not isinstance(doc, dict) or "traceEvents" not in doc:
        raise errors.no_event_array(name)
    if not isinstance(doc["traceEvents"], list):
        raise errors.events_not_a_list(name)
    return RawDocument(text, doc)
