"""The ``tracekit`` console script (``tracekit.__main__:main``) and ``python -m tracekit``.

Both run the command line inside one frame with a large value stack. CPython 3.11+ keeps frames
in chunks of 16 KB and frees a chunk the moment the frame at its base returns: a program whose
call depth swings back and forth across a chunk boundary (importing dozens of modules does) maps
and unmaps that chunk each time, and every fresh mapping faults its pages in again. Which depth
sits on a boundary depends on how deep the caller started, so the same command was ~10 ms slower
started from the console script than from ``python -m``. Measured on this project's 2-core VM,
``tracekit analyze`` of a 2 KB trace (perf stat, 15 runs each): 7,333 page faults and 131 ms from
the console script before; 5,457 and 118 ms with the command inside this frame, from either.
A frame of ~130 KB takes a 256 KB chunk of its own, and the ~120 KB left behind it holds every
deeper frame the command makes (the deepest import chains use a few KB), so no boundary is
crossed. Only pages the stack reaches are ever touched.
"""

import sys

# Value-stack slots (8 bytes each) added to ``_run``'s frame: past half of a 256 KB chunk, so
# the chunk allocated for it (the next power of two) leaves about as much again for what it calls.
STACK_SLOTS = 16_500


def _run() -> None:
    try:
        from tracekit.cli import entry
    except KeyboardInterrupt:  # Ctrl-C while the command line is still importing: nothing started yet
        raise SystemExit(130) from None
    entry()


if sys.implementation.name == "cpython":
    _run.__code__ = _run.__code__.replace(co_stacksize=_run.__code__.co_stacksize + STACK_SLOTS)


def main() -> None:
    _run()


if __name__ == "__main__":
    main()
