"""Reading gzipped traces, with Intel ISA-L's inflate where it is installed.

Kineto writes ``.json.gz``; inflating is a fixed share of every load. ISA-L (the ``isal`` package,
a dependency on the platforms it ships wheels for) inflates the same stream 3-5x faster than
zlib. Without it, the standard library does the same job. Either way a truncated file raises
``EOFError`` and corrupt data one of ``ERRORS``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import IO, Any, cast

_impl: Any
try:
    from isal import igzip as _impl
    from isal import isal_zlib as _isal_zlib

    ERRORS: tuple[type[BaseException], ...] = (
        EOFError,
        OSError,
        zlib.error,
        cast("type[BaseException]", _isal_zlib.error),
    )
    FAST = True
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _impl = gzip
    ERRORS = (EOFError, OSError, zlib.error)
    FAST = False


def open_gz(path: Path) -> IO[bytes]:
    """The decompressed bytes of a gzip file, as a stream."""
    fh: IO[bytes] = _impl.open(path, "rb")
    return fh


def read_gz(path: Path) -> bytes:
    """The whole decompressed content (raises one of ``ERRORS`` on a damaged file)."""
    out = bytearray()
    with open_gz(path) as fh:
        while block := fh.read(1 << 24):
            out += block
    return bytes(out)
