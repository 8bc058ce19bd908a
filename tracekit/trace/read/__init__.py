"""Reading trace files into the columnar ``Trace``: ``load_trace`` and its settings, ``ReadOptions``.

Code outside ``tracekit.trace`` imports the reader from here only (an import-linter contract in
pyproject.toml holds it to that); the modules behind it are free to change. ``ReadOptions`` is
imported at once (the command line builds it before it knows whether it reads a trace); every
other name loads its module on first use, so a command that reads no trace pays nothing for it.
"""

import importlib
from typing import TYPE_CHECKING, Any

from tracekit.trace.read.options import ReadOptions

if TYPE_CHECKING:
    from tracekit.trace.read.lenient import as_number
    from tracekit.trace.read.load import decode_bytes, decoded_size, load_trace, read_text
    from tracekit.trace.read.options import available_memory
    from tracekit.trace.read.raw import RawDocument, read_document
    from tracekit.trace.read.text import MAGIC as GZIP_MAGIC

# name -> (module, its name there)
_LAZY = {
    "load_trace": ("load", "load_trace"),
    "decoded_size": ("load", "decoded_size"),
    "read_text": ("load", "read_text"),
    "decode_bytes": ("load", "decode_bytes"),
    "read_document": ("raw", "read_document"),
    "RawDocument": ("raw", "RawDocument"),
    "available_memory": ("options", "available_memory"),
    "as_number": ("lenient", "as_number"),
    "GZIP_MAGIC": ("text", "MAGIC"),
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{where[0]}"), where[1])


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "GZIP_MAGIC",
    "RawDocument",
    "ReadOptions",
    "as_number",
    "available_memory",
    "decode_bytes",
    "decoded_size",
    "load_trace",
    "read_document",
    "read_text",
]
