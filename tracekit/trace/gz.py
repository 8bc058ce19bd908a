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

from tracekit.trace.policy import BudgetExceeded

MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip file

_impl: Any
_isal_zlib: Any = None
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


class _RawGzip:
    """ISA-L's gzip reader used directly: ``readinto`` inflates into the caller's buffer, with no
    intermediate buffer per read (``isal_zlib._GzipReader``, the engine behind ``igzip.open``)."""

    def __init__(self, path: Path, reader_type: Any) -> None:
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._reader = reader_type(self._fh)
        self.readinto = self._reader.readinto
        self.read = self._reader.read

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> _RawGzip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_gz_into(path: Path) -> IO[bytes] | _RawGzip:
    """A decompressing stream for ``readinto``: ISA-L's own reader where present, else ``open_gz``."""
    reader_type = getattr(_isal_zlib, "_GzipReader", None) if FAST else None
    if reader_type is None:
        return open_gz(path)
    return _RawGzip(path, reader_type)


def open_text(path: Path, gz: bool) -> IO[bytes] | _RawGzip:
    """The file's text as a binary stream for ``readinto``: inflated (``open_gz_into``) when ``gz``."""
    return open_gz_into(path) if gz else open(path, "rb")


def read_gz(path: Path, limit: int = 1 << 62) -> bytes:
    """The whole decompressed content (raises one of ``ERRORS`` on a damaged file, and
    ``policy.BudgetExceeded`` past ``limit`` bytes, having inflated at most 16 MB more)."""
    out = bytearray()
    with open_gz(path) as fh:
        while block := fh.read(1 << 24):
            out += block
            if len(out) > limit:
                raise BudgetExceeded
    return bytes(out)
