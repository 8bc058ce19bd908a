"""The ``tracekit`` console script (``tracekit.__main__:main``) and ``python -m tracekit``.

Both run the command line inside one frame with a large value stack. CPython 3.11+ keeps frames
in chunks (16 KB at first) and frees a chunk the moment the frame at its base returns: a program
whose call depth swings back and forth across a chunk's end (importing dozens of modules does)
maps and unmaps that chunk each time, and every fresh mapping faults its pages in again. Which
depth sits on a boundary depends on how deep the caller started, so the same command was ~10 ms
slower started from the console script than from ``python -m``. Measured on this project's 2-core
VM, ``tracekit analyze`` of a 2 KB trace (perf stat, 15-20 runs each): 7,333 page faults and
131 ms from the console script before; 5,445 and 116 ms with the command inside this frame, from
either.

The frame gets a chunk of its own: the smallest power of two (in slots of 8 bytes) that holds it
plus 1,000 slots. ``STACK_SLOTS`` puts the frame just past half of such a chunk (32,768 slots),
so ~16,000 slots (~130 KB) stay free behind it for every deeper frame the command makes, and no
boundary is crossed. A size just under a doubling point (frame + 1,000 slots a little below 8,192
or 16,384) leaves only those 1,000 slots, and the import chains need more: 15,300 slots measured
8,873 page faults, worse than no frame at all, and 7,100 slots 6,829, little better. Only the
pages the stack reaches are ever touched.
"""

import sys

# Value-stack slots (8 bytes each) added to ``_run``'s frame: with CPython's 1,000 slots of
# headroom just past 16,384, so its chunk is 32,768 slots and ~16,000 stay free (see above).
STACK_SLOTS = 16_500


def _run() -> None:
    try:
        from tracekit.cli import entry
    except KeyboardInterrupt:  # Ctrl-C while the command line is still importing: nothing started yet
        raise SystemExit(130) from None
    entry()


if sys.implementation.name == "cpython":
    try:
        _run.__code__ = _run.__code__.replace(co_stacksize=_run.__code__.co_stacksize + STACK_SLOTS)
    except (TypeError, ValueError):  # a CPython that refuses the change: only the start-up gain is lost
        pass


def main() -> None:
    _run()


if __name__ == "__main__":
    main()
