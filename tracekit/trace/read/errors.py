"""What the reader says about bad input, in one place: the input policy, the exceptions the
readers raise between themselves, the one-line errors the user sees, and the reading of msgspec's
error messages.

* **Inflate budget.** A small ``.json.gz`` can inflate to gigabytes. Every path stops once the text
  of one file passes the budget (``BudgetExceeded``): a quarter of the memory available to this
  process (``options.available_memory``: the system's available memory, the cgroup's limit,
  ``RLIMIT_AS``), or ``ReadOptions.inflate_budget`` (``TRACEKIT_MAX_INFLATE`` on the command line).
* **Nesting.** Every path decodes with msgspec, which refuses JSON nested deeper than the
  interpreter's recursion limit (about ``MAX_DEPTH`` levels) with ``RecursionError``; the
  readers turn that into ``TooDeep`` and then ``too_deep``, before any deep value is built.
* **Numbers.** After the columns are built: times must be finite, durations non-negative, and
  starts within the trace's span (not hours away from every other event, as a missing ``ts`` read
  as 0 or a ``1e30`` would be). Such events are dropped and counted (``build.in_range``,
  ``build.span_bounds``).
* **Words.** Each problem becomes a ``TraceFormatError`` (kind, problem, advice) from one factory
  here, so every reader says the same thing about the same file.

msgspec reports what is wrong in words, not in fields: a byte offset inside ``(byte N)``, a fixed
sentence for text that ends too soon, the path of a value that has the wrong type. Every reader
learns what a decode error means from the functions here, and ``tests/test_decode_errors.py``
pins each wording against the installed msgspec, whose version ``pyproject.toml`` bounds: a
msgspec that words its errors differently fails that test instead of changing what tracekit says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import msgspec

from tracekit.errors import TraceFormatError
from tracekit.trace.read.options import BUDGET_ENV
from tracekit.trace.read.text import WS
from tracekit.units import format_size

MAX_DEPTH = 1000

# msgspec's wording, read nowhere else (pinned by tests/test_decode_errors.py).

TRUNCATED = "Input data was truncated"  # text that ends inside a value
_AT_BYTE = re.compile(r"\(byte (\d+)\)")
_TRAILING = "trailing characters"  # a complete value, then more text
_BAD_UTF8 = "Invalid UTF-8 encoded string"
_NO_EVENTS = "missing required field `traceEvents`"
_AT_ROOT = ("- at `$`", "- at `$.traceEvents`")
_NOT_OBJECT = "Expected `object`"


@dataclass(frozen=True)
class Damage:
    """A decode error of invalid or truncated JSON, as every reader reports it: msgspec's words,
    with ``at`` (the byte offset they name, if any) counted in the whole text."""

    words: str
    at: int | None

    @property
    def truncated(self) -> bool:
        return self.words == TRUNCATED


def _byte(message: str) -> int | None:
    m = _AT_BYTE.search(message)
    return int(m.group(1)) if m else None


def damage(exc: msgspec.DecodeError, shift: int = 0) -> Damage:
    """``exc`` as ``Damage``, its offset moved by ``shift`` (a piece's offset -> the whole text's)."""
    text = str(exc)
    at = _byte(text)
    if at is None or not shift:
        return Damage(text, at)
    return Damage(_AT_BYTE.sub(f"(byte {at + shift})", text, count=1), at + shift)


def offset(exc: msgspec.DecodeError) -> int | None:
    """The byte offset a decode error names, if any."""
    return _byte(str(exc))


def is_truncated(exc: msgspec.DecodeError) -> bool:
    """The text ended inside a value (a cut inside a string, or simply the end of the file)."""
    return str(exc) == TRUNCATED


def ends_early(exc: msgspec.DecodeError) -> bool:
    """A complete value ended before the text did (msgspec names the byte after the first one
    that follows it)."""
    return _TRAILING in str(exc)


def bad_utf8(exc: msgspec.DecodeError) -> bool:
    """A string read into a field holds invalid UTF-8 (no offset given)."""
    return str(exc) == _BAD_UTF8


def layout(exc: msgspec.ValidationError) -> Literal["no-events", "events-not-a-list"] | None:
    """Whether a typed decode failed on the document's shape, which no event-by-event decode can
    fix: no ``traceEvents``, or a ``traceEvents`` (or document) of the wrong type."""
    text = str(exc)
    if _NO_EVENTS in text:
        return "no-events"
    if text.endswith(_AT_ROOT):
        return "events-not-a-list"
    return None


def not_an_object(exc: msgspec.ValidationError) -> bool:
    """The document itself is not a JSON object (a bare list of events, say)."""
    return str(exc).startswith(_NOT_OBJECT)


def text_at_fault(exc: msgspec.DecodeError, cut: int) -> bool:
    """Whether decoding a piece cut after byte ``cut`` failed because of the text itself rather
    than the cut: an error at or before the cut, or one no cut can cause (invalid UTF-8). A cut
    inside an event fails just after it, or as truncated input (a cut inside a string)."""
    if is_truncated(exc):
        return False
    at = offset(exc)
    return at is None or at <= cut


# The readers' signals to their callers, which turn each into a ``TraceFormatError`` below.


class BudgetExceeded(Exception):
    """The text passes the inflate budget."""


class TooDeep(Exception):
    """msgspec met JSON nested deeper than it can decode."""


class Damaged(Exception):
    """The text ends or breaks inside the event array (a truncated or corrupt file)."""

    def __init__(self, damage: Damage) -> None:
        super().__init__(damage.words)
        self.damage = damage


class GzipDamaged(Exception):
    """The gzip stream is truncated or corrupt (the message is the error's class name)."""


class EmptyText(Exception):
    """The text is whitespace only."""


class NoEventArray(Exception):
    """A JSON object with no ``"traceEvents": [`` in it; ``text`` is the whole document."""

    def __init__(self, text: bytes) -> None:
        super().__init__("no traceEvents array")
        self.text = text


# The errors the user sees: one line each, saying what is wrong and what to do.

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


def empty(name: str) -> TraceFormatError:
    return TraceFormatError(name, "is empty (0 trace events); was the profiler stopped before it wrote?", kind="empty")


def no_usable_events(name: str, why: str) -> TraceFormatError:
    return TraceFormatError(
        name, f"contains no usable trace events (no cpu ops, annotations or kernels){why}", kind="no-events"
    )
