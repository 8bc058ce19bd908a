"""The input policy for trace files, in one place: how much text tracekit inflates, how deep it
lets JSON nest, which numbers it keeps, and the words every loader path uses for each problem.

* **Inflate budget.** A small ``.json.gz`` can inflate to gigabytes. Every path stops once the text
  of one file passes the budget: a quarter of the memory available to this process (the system's
  available memory, the cgroup's limit, ``RLIMIT_AS``), or ``TRACEKIT_MAX_INFLATE`` (``8G``,
  ``512M``, bytes).
* **Nesting.** Every path decodes with msgspec, which refuses JSON nested deeper than the
  interpreter's recursion limit (about ``MAX_DEPTH`` levels) with ``RecursionError``; the
  loaders turn that into ``too_deep``, before any deep value is built.
* **Numbers.** After the columns are built (``in_range``): times must be finite, durations
  non-negative, and starts within the trace's span (not hours away from every other event, as a
  missing ``ts`` read as 0 or a ``1e30`` would be). Such events are dropped and counted.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: numpy.typing costs start-up time
    from numpy.typing import NDArray

from tracekit.errors import TraceFormatError, UserError

MAX_DEPTH = 1000
ENV_BUDGET = "TRACEKIT_MAX_INFLATE"
_MIN_BUDGET = 64 << 20
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# An event starting further than this from the middle of the trace, in interquartile ranges of the
# trace's starts (and at least an hour), lies outside the trace's span.
SPAN_IQRS = 1000.0
SPAN_MIN_US = 3600e6


def human(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def parse_size(text: str) -> int:
    """'8G', '512M', '4GB', bytes -> bytes; ValueError for anything else, a 5,000-digit literal or
    a size past an exabyte included."""
    m = _SIZE.match(text) if len(text) <= 32 else None
    if m is None:
        raise ValueError(text)
    size = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not size < 2**60:
        raise ValueError(text)
    return int(size)


# Every variable tracekit reads, with what it accepts: checked once, before any command runs
# (``check_environment``), so a bad setting is one line, not a warning per trace or a silent default.
SIZE_VARIABLES = {
    ENV_BUDGET: (1 << 20, 1 << 50),
    "TRACEKIT_CHUNKED_BYTES": (1 << 10, 1 << 50),
    "TRACEKIT_PARALLEL_BYTES": (1 << 10, 1 << 50),
}
CHOICE_VARIABLES = {
    "TRACEKIT_LOADER": ("auto", "whole", "chunked"),
    "TRACEKIT_PROGRESS": ("0", "1"),
    "TRACEKIT_DEBUG": ("0", "1"),
}
COUNT_VARIABLES = {
    "TRACEKIT_LOAD_WORKERS": (1, 4096),
    "TRACEKIT_MAX_CONTEXTS": (1, 10**7),
    "TRACEKIT_MAX_STEPS": (1, 10**9),
    "TRACEKIT_MAX_WALK": (1, 10**9),
}


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Refuse a bad ``TRACEKIT_*`` setting in one line naming the variable and what it accepts."""
    env = os.environ if environ is None else environ
    for name, (lo, hi) in SIZE_VARIABLES.items():
        given = env.get(name)
        if given:
            try:
                ok = lo <= parse_size(given) <= hi
            except ValueError:
                ok = False
            if not ok:
                raise UserError(
                    f"{name}={given[:32]!r}: give a size from {human(lo)} to {human(hi)} (examples: {name}=8G, {name}=512M)"
                )
    for name, choices in CHOICE_VARIABLES.items():
        given = env.get(name)
        if given and given not in choices:
            raise UserError(f"{name}={given[:32]!r}: give one of {', '.join(choices)}")
    for name, (lo, hi) in COUNT_VARIABLES.items():
        given = env.get(name)
        if given and not (len(given) <= 10 and given.isdigit() and lo <= int(given) <= hi):
            raise UserError(f"{name}={given[:32]!r}: give a whole number from {lo:,} to {hi:,}")


def env_size(name: str, default: int) -> int:
    """A size from the environment, read at import; ``check_env`` reports a bad one when used."""
    try:
        return parse_size(os.environ.get(name) or str(default))
    except ValueError:
        return default


def check_env(*names: str) -> None:
    for name in names:
        given = os.environ.get(name)
        if given:
            try:
                parse_size(given)
            except ValueError:
                raise TraceFormatError(
                    name, f"{given!r} is not a size in bytes (examples: {name}=8G, {name}=512M)"
                ) from None


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


def inflate_budget() -> tuple[int, str]:
    """The budget in bytes, and where it comes from (for the message)."""
    given = os.environ.get(ENV_BUDGET)
    if given:
        try:
            return parse_size(given), f"{ENV_BUDGET}={given}"
        except ValueError:
            raise TraceFormatError(
                ENV_BUDGET, f"{given!r} is not a size (examples: {ENV_BUDGET}=8G, {ENV_BUDGET}=512M)"
            ) from None
    return max(_MIN_BUDGET, available_memory() // 4), "a quarter of the available memory"


def over_budget(name: str, budget: int, source: str) -> TraceFormatError:
    suggest = max(1, -(-2 * budget // (1 << 30)))
    return TraceFormatError(
        name,
        f"inflates past the {human(budget)} inflate budget ({source}); if the trace is genuine and the "
        f"machine has the memory, raise it, e.g. {ENV_BUDGET}={suggest}G",
        kind="budget",
    )


def too_deep(name: str) -> TraceFormatError:
    return TraceFormatError(
        name, f"JSON nested more than about {MAX_DEPTH} levels deep; not a trace tracekit can read", kind="depth"
    )


def damaged(name: str, detail: str) -> TraceFormatError:
    """Invalid or truncated JSON, in the same words on every path (``detail`` is the decoder's)."""
    return TraceFormatError(
        name,
        f"invalid or truncated JSON ({detail}); use --partial to analyze the events before the damage",
        has_prefix=True,
        kind="truncated" if detail == TRUNCATED else "json",
    )


def gzip_damaged(name: str, error: str, *, has_prefix: bool) -> TraceFormatError:
    return TraceFormatError(
        name,
        f"truncated or corrupt gzip ({error}); the profiler was probably killed mid-write. "
        "Use --partial to analyze the usable prefix",
        has_prefix=has_prefix,
        kind="gzip",
    )


def not_json(name: str, head: bytes) -> TraceFormatError:
    """The first bytes are not a JSON object or array: say what they look like."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return TraceFormatError(name, "is UTF-16 text; tracekit reads UTF-8 JSON (save the trace as UTF-8)")
    stripped = head.lstrip(b" \t\n\r")
    if stripped[:1].isdigit() or stripped[:1] in (b"-", b'"') or stripped.startswith((b"null", b"true", b"false")):
        return TraceFormatError(name, 'is JSON but a single value, not a Chrome trace ({"traceEvents": [...]})')
    return TraceFormatError(name, 'is not JSON (expected a Chrome trace: {"traceEvents": [...]})')


BOM = b"\xef\xbb\xbf"
TRUNCATED = "Input data was truncated"  # msgspec's words for text that ends too soon


class BudgetExceeded(Exception):
    """Raised by the readers when the text passes the inflate budget."""


class TooDeep(Exception):
    """Raised by the chunked reader when msgspec meets JSON nested deeper than it can decode."""


def empty(name: str) -> TraceFormatError:
    return TraceFormatError(name, "is empty (0 trace events); was the profiler stopped before it wrote?")


def in_range(ts: NDArray[np.float64], dur: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which events have finite times and a non-negative duration (vectorized; the span check
    is ``span_bounds``, over every kind of event at once)."""
    with np.errstate(invalid="ignore", over="ignore"):
        end = ts + dur
        ok: NDArray[np.bool_] = np.isfinite(end) & np.isfinite(ts) & (dur >= 0)
    return ok


def span_bounds(starts: NDArray[np.float64]) -> tuple[float, float]:
    """The trace's span: starts further from its median than ``SPAN_IQRS`` interquartile ranges
    (and at least an hour) lie outside it."""
    n = len(starts)
    if n == 0:
        return float("-inf"), float("inf")
    at = [(n - 1) // 4, (n - 1) // 2, 3 * (n - 1) // 4]
    # Order statistics by partition: np.percentile would load numpy.ma into every command's start-up.
    q25, q50, q75 = np.partition(starts, at)[at].tolist()
    reach = max(SPAN_IQRS * (q75 - q25), SPAN_MIN_US)
    return q50 - reach, q50 + reach
