"""The C library's allocator, where it is glibc: handing freed heap pages back, and its knobs."""

from __future__ import annotations

import functools
from typing import Any


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    After megabyte-sized buffers are freed (a worker's results, unpickled; the decoded chunks),
    glibc serves later arrays from its heap rather than from fresh mappings, and keeps the heap
    when they are freed: on a 12.8 M-span trace ~300 MB stayed resident through nesting, the
    moment a build needs the most memory (measured before the columns grew in place)."""
    c = glibc()
    if c is not None:
        c.malloc_trim(0)


@functools.cache
def glibc() -> Any:
    """The C library, where it is glibc (its allocator's knobs), else None."""
    try:
        import ctypes

        lib = ctypes.CDLL("libc.so.6")
        return lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else None
    except OSError:
        return None
