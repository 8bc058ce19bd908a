"""The raw document: a trace file as generic JSON, for code that rewrites the file (the Perfetto
export, the HTA bridge) rather than analyzes it. Read through the same reader as ``load``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import msgspec

from tracekit.errors import TraceFormatError
from tracekit.trace.load import read_text


@dataclass
class RawDocument:
    text: bytes  # the (decompressed) JSON
    doc: dict[str, Any]  # the document; a list-form trace is wrapped as {"traceEvents": [...]}

    @property
    def events(self) -> list[Any]:
        events: list[Any] = self.doc["traceEvents"]
        return events


def read_document(path: str | os.PathLike[str]) -> RawDocument:
    text = read_text(path)
    try:
        doc = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise TraceFormatError(str(path), f"invalid or truncated JSON ({exc})") from None
    if isinstance(doc, list):
        doc = {"traceEvents": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        raise TraceFormatError(str(path), "is JSON but not a Chrome trace (no traceEvents array)")
    return RawDocument(text, doc)
