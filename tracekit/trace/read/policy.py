"""The input policy for trace files, in one place: how much text tracekit inflates, how deep it
lets JSON nest, which numbers it keeps, and the words every loader path uses for each problem.

* **Inflate budget.** A small ``.json.gz`` can inflate to gigabytes. Every path stops once the text
  of one file passes the budget: a quarter of the memory available to this process (the system's
  available memory, the cgroup's limit, ``RLIMIT_AS``), or ``ReadOptions.inflate_budget``
  (``TRACEKIT_MAX_INFLATE`` on the command line).
* **Nesting.** Every path decodes with msgspec, which refuses JSON nested deeper than the
  interpreter's recursion limit (about ``MAX_DEPTH`` levels) with ``RecursionError``; the
  loaders turn that into ``too_deep``, before any deep value is built.
* **Numbers.** After the columns are built: times must be finite, durations
  non-negative, and starts within the trace's span (not hours away from every other event, as a
  missing ``ts`` read as 0 or a ``1e30`` would be). Such events are dropped and counted
  (``build.in_range``, ``build.span_bounds``).
"""

from __future__ import annotations

import os

from tracekit.errors import TraceFormatError
from tracekit.trace.read.decode_errors import Damage
from tracekit.trace.read.options import BUDGET_ENV, ReadOptions
from tracekit.units import format_size

MAX_DEPTH = 1000
_MIN_BUDGET = 64 << 20


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
        return int(text)
    except (OSError, ValueError):
        return None


def available_memory() -> int:
    """Bytes this process can still allocate: the least of the system's available memory, the
    cgroup's remaining allowance and the address-space limit."""
    avail: int | None = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 4 << 30
    limit, usage = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and usage is not None:
        avail = min(avail, max(0, limit - usage))

    import resource  # here: one import less in every command's start-up

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        avail = min(avail, max(0, soft - _vm_size()))
    return avail


def _vm_size() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def inflate_budget(options: ReadOptions) -> int:
    """The most text one file may inflate to, in bytes."""
    if options.inflate_budget is not None:
        return options.inflate_budget
    return max(_MIN_BUDGET, available_memory() // 4)


_PARTIAL = "use --partial to analyze the events before the damage"


def over_budget(name: str, budget: int, source: str) -> TraceFormatError:
    suggest = max(1, -(-2 * budget // 10**9))
    return TraceFormatError(
        name,
        f"inflates past the {format_size(budget)} inflate budget ({source})",
        advice=f"if the trace is genuine and the machine has the memory, raise it, e.g. {BUDGET_ENV}={suggest}G",
        kind="budget",
    )


def too_many_names(name: str, limit: int) -> TraceFormatError:
    return TraceFormatError(
        name,
        f"holds more than {limit:,} distinct event names, the limit (each costs about 0.9 kB to analyze); "
        f"if the trace is genuine and the machine has the memory, raise it, e.g. TRACEKIT_MAX_NAMES={2 * limit}",
        kind="names",
    )


def too_deep(name: str) -> TraceFormatError:
    return TraceFormatError(
        name, f"JSON nested more than about {MAX_DEPTH} levels deep; not a trace tracekit can read", kind="depth"
    )


def damaged(name: str, damage: Damage) -> TraceFormatError:
    """Invalid or truncated JSON, in the same words on every path (msgspec's, with the offset in
    the whole text)."""
    return TraceFormatError(
        name,
        f"invalid or truncated JSON ({damage.words})",
        advice=_PARTIAL,
        has_prefix=True,
        kind="truncated" if damage.truncated else "json",
        offset=damage.at,
    )


def gzip_damaged(name: str, error: str, *, has_prefix: bool) -> TraceFormatError:
    return TraceFormatError(
        name,
        f"truncated or corrupt gzip ({error}); the profiler was probably killed mid-write",
        advice="use --partial to analyze the usable prefix",
        has_prefix=has_prefix,
        kind="gzip",
    )


def no_gzip_prefix(name: str) -> TraceFormatError:
    """A damaged gzip of which nothing inflates: not even --partial finds events."""
    return TraceFormatError(name, "corrupt gzip with no usable prefix", kind="gzip")


def not_json(name: str, head: bytes) -> TraceFormatError:
    """The first bytes are not a JSON object or array: say what they look like."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return TraceFormatError(
            name, "is UTF-16 text; tracekit reads UTF-8 JSON", advice="save the trace as UTF-8", kind="not-json"
        )
    stripped = head.lstrip(WS)
    if stripped[:1].isdigit() or stripped[:1] in (b"-", b'"') or stripped.startswith((b"null", b"true", b"false")):
        return TraceFormatError(
            name, 'is JSON but a single value, not a Chrome trace ({"traceEvents": [...]})', kind="not-a-trace"
        )
    return TraceFormatError(name, 'is not JSON (expected a Chrome trace: {"traceEvents": [...]})', kind="not-json")


def no_event_array(name: str) -> TraceFormatError:
    return TraceFormatError(name, "is JSON but not a Chrome trace (no traceEvents array)", kind="not-a-trace")


def events_not_a_list(name: str) -> TraceFormatError:
    return TraceFormatError(
        name, "is JSON but not a Chrome trace (traceEvents is not a list of events)", kind="not-a-trace"
    )


BOM = b"\xef\xbb\xbf"
WS = b" \t\n\r"  # JSON's whitespace (bytes.strip() would take \v and \f too)


class BudgetExceeded(Exception):
    """Raised by the readers when the text passes the inflate budget."""


class TooDeep(Exception):
    """Raised by the readers when msgspec meets JSON nested deeper than it can decode."""


def empty(name: str) -> TraceFormatError:
    return TraceFormatError(name, "is empty (0 trace events); was the profiler stopped before it wrote?", kind="empty")


def no_usable_events(name: str, why: str) -> TraceFormatError:
    return TraceFormatError(
        name, f"contains no usable trace events (no cpu ops, annotations or kernels){why}", kind="no-events"
    )
