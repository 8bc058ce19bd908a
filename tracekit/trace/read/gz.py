"""Reading gzipped traces, with Intel ISA-L's inflate where it is installed.

Kineto writes ``.json.gz``; inflating is a fixed share of every load. ISA-L (the ``isal`` package,
a dependency on the platforms it ships wheels for) inflates the same stream several times faster
than zlib, through the same file interface as the standard library's ``gzip``, which does the job
where ISA-L is missing (or ``ReadOptions.isal`` is off). Either way a truncated file raises
``EOFError`` and corrupt data one of ``ERRORS``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import IO, Any, cast

from tracekit.trace.read.policy import BudgetExceeded

MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip file

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


def read_gz(path: Path, limit: int = 1 << 62, *, isal: bool = True) -> bytes:
    """The whole decompressed content (raises one of ``ERRORS`` on a damaged file, and
    ``policy.BudgetExceeded`` past ``limit`` bytes, having inflated at most 16 MB more)."""
    out = bytearray()
    with open_gz(path, isal=isal) as fh:
        while block := fh.read(1 << 24):
            out += block
            if len(out) > limit:
                raise BudgetExceeded
    return bytes(out)
