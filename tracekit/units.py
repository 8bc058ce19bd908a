"""Sizes in bytes, read and written in one grammar: Dask's (``--memory-limit 4GB`` and
``TRACEKIT_MAX_INFLATE=8G`` mean the same 8e9-style decimal units, ``GiB`` the binary ones)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
MAX_BYTES = 1 << 60  # past this a "size" is a typo, not a file or a machine


def parse_size(text: str) -> int:
    """``'512M'``, ``'8G'``, ``'4GB'`` (decimal), ``'2GiB'`` (binary) or plain bytes -> bytes.
    ValueError for anything else, and for sizes past ``MAX_BYTES``."""
    m = _SIZE.match(text) if len(text) <= 32 else None
    if m is None or (m.group(3) and not m.group(2)):
        raise ValueError(text)
    base = 1024 if m.group(3) else 1000
    size = float(m.group(1)) * base ** _POWER[m.group(2).lower()]
    if not size < MAX_BYTES:
        raise ValueError(text)
    return int(size)


def format_size(n: float) -> str:
    """Bytes as a short decimal size (``'16.8 MB'``), the units ``parse_size`` reads back."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"
