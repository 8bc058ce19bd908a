"""The C library's allocator, where it is glibc: every knob tracekit turns, in one place.

* ``release_freed_memory`` (``malloc_trim``): after a build frees megabyte-sized buffers (decoded
  chunks, a worker's unpickled results), glibc keeps the freed heap and serves later arrays from
  it; handing it back before nesting lowers the peak of a large load.
* ``set_mmap_threshold`` (``mallopt(M_MMAP_THRESHOLD)``), in the parallel reader's workers: blocks
  above the threshold are mapped and unmapped on their own, so the arrays a worker frees after
  each piece go back to the system instead of leaving holes in a heap that only grows.
* Dask's workers: Dask sets ``MALLOC_TRIM_THRESHOLD_`` in them to hand freed memory back at once;
  loading a trace frees big buffers all the time, so the embedded cluster unsets it
  (``DASK_WORKER_ENV``).

Measurements: docs/performance.md, section "Loader".
"""

from __future__ import annotations

import functools
from typing import Any

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc's malloc.h)
WORKER_MMAP_THRESHOLD = 128 << 10  # glibc's initial value, which it would otherwise raise as blocks are freed
# Dask's nanny settings for the embedded cluster: None removes the variable from its workers.
DASK_WORKER_ENV: dict[str, object] = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing)."""
    c = _glibc()
    if c is not None:
        c.malloc_trim(0)


def set_mmap_threshold(size: int) -> None:
    """Serve every block of ``size`` bytes or more by its own mapping (glibc; elsewhere nothing)."""
    c = _glibc()
    if c is not None:
        c.mallopt(M_MMAP_THRESHOLD, size)


@functools.cache
def _glibc() -> Any:
    """The C library, where it is glibc (it has both knobs), else None."""
    try:
        import ctypes

        lib = ctypes.CDLL("libc.so.6")
        return lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else None
    except OSError:
        return None
