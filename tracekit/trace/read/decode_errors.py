"""msgspec's error messages, read in one place.

msgspec reports what is wrong in words, not in fields: a byte offset inside ``(byte N)``, a fixed
sentence for text that ends too soon, the path of a value that has the wrong type. Every reader
learns what a decode error means from the functions here, and ``tests/test_decode_errors.py``
pins each wording against the installed msgspec, whose version ``pyproject.toml`` bounds: a
msgspec that words its errors differently fails that test instead of changing what tracekit says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import msgspec

TRUNCATED = "Input data was truncated"  # text that ends inside a value
_AT_BYTE = re.compile(r"\(byte (\d+)\)")
_TRAILING = "trailing characters"  # a complete value, then more text
_BAD_UTF8 = "Invalid UTF-8 encoded string"
_NO_EVENTS = "missing required field `traceEvents`"
_AT_ROOT = ("- at `$`", "- at `$.traceEvents`")
_NOT_OBJECT = "Expected `object`"


@dataclass(frozen=True)
class Damage:
    """A decode error of invalid or truncated JSON, as every reader reports it: msgspec's words,
    with ``at`` (the byte offset they name, if any) counted in the whole text."""

    words: str
    at: int | None

    @property
    def truncated(self) -> bool:
        return self.words == TRUNCATED


def _byte(message: str) -> int | None:
    m = _AT_BYTE.search(message)
    return int(m.group(1)) if m else None


def damage(exc: msgspec.DecodeError, shift: int = 0) -> Damage:
    """``exc`` as ``Damage``, its offset moved by ``shift`` (a piece's offset -> the whole text's)."""
    text = str(exc)
    at = _byte(text)
    if at is None or not shift:
        return Damage(text, at)
    return Damage(_AT_BYTE.sub(f"(byte {at + shift})", text, count=1), at + shift)


def offset(exc: msgspec.DecodeError) -> int | None:
    """The byte offset a decode error names, if any."""
    return _byte(str(exc))


def is_truncated(exc: msgspec.DecodeError) -> bool:
    """The text ended inside a value (a cut inside a string, or simply the end of the file)."""
    return str(exc) == TRUNCATED


def ends_early(exc: msgspec.DecodeError) -> bool:
    """A complete value ended before the text did (msgspec names the byte after the first one
    that follows it)."""
    return _TRAILING in str(exc)


def bad_utf8(exc: msgspec.DecodeError) -> bool:
    """A string read into a field holds invalid UTF-8 (no offset given)."""
    return str(exc) == _BAD_UTF8


def layout(exc: msgspec.ValidationError) -> Literal["no-events", "events-not-a-list"] | None:
    """Whether a typed decode failed on the document's shape, which no event-by-event decode can
    fix: no ``traceEvents``, or a ``traceEvents`` (or document) of the wrong type."""
    text = str(exc)
    if _NO_EVENTS in text:
        return "no-events"
    if text.endswith(_AT_ROOT):
        return "events-not-a-list"
    return None


def not_an_object(exc: msgspec.ValidationError) -> bool:
    """The document itself is not a JSON object (a bare list of events, say)."""
    return str(exc).startswith(_NOT_OBJECT)
