"""A trace file's text: opened as a byte stream (inflated, with Intel ISA-L's inflate where it is
installed), and where its content starts.

Kineto writes ``.json.gz``; inflating is a fixed share of every load. ISA-L (the ``isal`` package,
a dependency on the platforms it ships wheels for) inflates the same stream several times faster
than zlib, through the same file interface as the standard library's ``gzip``, which does the job
where ISA-L is missing (or ``ReadOptions.isal`` is off). Either way a truncated file raises
``EOFError`` and corrupt data one of ``ERRORS``.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import IO, Any, cast

MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip file
BOM = b"\xef\xbb\xbf"
WS = b" \t\n\r"  # JSON's whitespace (bytes.strip() would take \v and \f too)

_isal: Any
try:
    from isal import igzip as _isal
    from isal import isal_zlib

    ERRORS: tuple[type[BaseException], ...] = (
        EOFError,
        OSError,
        zlib.error,
        cast("type[BaseException]", isal_zlib.error),
    )
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _isal = None
    ERRORS = (EOFError, OSError, zlib.error)


def open_gz(path: Path, *, isal: bool = True) -> IO[bytes]:
    """The decompressed bytes of a gzip file, as a stream (with ``readinto``)."""
    impl = _isal if isal and _isal is not None else gzip
    fh: IO[bytes] = impl.open(path, "rb")
    return fh


def open_text(path: Path, gz: bool, *, isal: bool = True) -> IO[bytes]:
    """The file's text as a binary stream: inflated (``open_gz``) when ``gz``."""
    return open_gz(path, isal=isal) if gz else open(path, "rb")


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
