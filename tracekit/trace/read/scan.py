"""Byte-level helpers for the readers: where the content starts, where events end.

``event_ends`` finds, with numpy over a whole piece at once, the ``}`` that close the top-level
objects of a JSON array: strings are tracked by their quotes (a quote is escaped after an odd
run of backslashes) and brackets count only outside strings. The reader uses it only where its
cheap candidate cuts keep landing inside one large event.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: numpy.typing costs start-up time
    from numpy.typing import NDArray

from tracekit.trace.read.policy import BOM, WS


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


LEADING_WS = re.compile(b"[%s]*" % WS)


def content_start(data: bytes | bytearray, end: int | None = None) -> int:
    """Where ``data[:end]`` stops being whitespace (a UTF-8 byte-order mark counts as such)."""
    stop = len(data) if end is None else end
    start = 3 if data[:3] == BOM else 0
    lead = LEADING_WS.match(data, start, stop)
    return lead.end() if lead else start


def first_byte(data: bytes) -> bytes:
    """The first non-whitespace byte (b"" if none), without copying the buffer."""
    start = content_start(data)
    return data[start : start + 1]
