"""The in-memory trace model: only what analysis needs, as columns.

Decoding produces typed records: msgspec reads each event's ``ph`` and builds an ``Event``
(complete spans), a flow end, or an empty ``Skipped`` (every other phase: metadata, instants,
counters), filling only the declared fields and skipping the rest inside its C decoder. The
builder turns the spans analysis needs into ``Columns`` (numpy arrays; names, categories and
threads as codes into tables) and lets the records go with their chunk, so a trace costs ~40
bytes a kept span (32-bit codes; correlation ids dropped once linked). ``Trace.host`` and
``Trace.device`` read the columns back as ``Span`` rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any, ClassVar, Literal, Union, cast, overload

import msgspec
import numpy as np
from numpy.typing import NDArray

from tracekit.trace.tree import child_time

# Kinds of device activity, in Kineto's ``cat`` vocabulary (older traces capitalise them).
DEVICE_CATS = frozenset({"kernel", "gpu_memcpy", "gpu_memset", "Kernel", "Memcpy", "Memset"})
# Host spans that can enclose a launch (their names form the scope stack of a kernel).
HOST_CATS = frozenset({"cpu_op", "user_annotation", "cuda_runtime", "cuda_driver", "Operator", "Runtime"})
OP_CATS = frozenset({"cpu_op", "Operator"})
RUNTIME_CATS = frozenset({"cuda_runtime", "cuda_driver", "Runtime"})
GPU_ANNOTATION_CAT = "gpu_user_annotation"


class Args(msgspec.Struct, frozen=True, gc=False):
    """The few ``args`` fields analysis reads; all others are skipped by the decoder."""

    correlation: int | str | None = -1  # -1: none given (so a column of ids is one C-level pass)


# The ``args`` of an event that has none: a shared instance rather than None, so reading
# ``args.correlation`` over a whole chunk stays one C-level pass (``attrgetter``).
NO_ARGS = Args()


class Event(msgspec.Struct, gc=False, tag_field="ph", tag="X"):
    """One complete (``"ph": "X"``) Chrome-trace event, typed; unknown fields are skipped while decoding."""

    name: str = ""
    cat: str = ""
    pid: int | str = 0
    tid: int | str = 0
    ts: float = float("nan")  # missing: not a time (the range check drops it), never time 0
    dur: float = 0.0
    args: Args | None = NO_ARGS


class FlowStart(msgspec.Struct, gc=False, tag_field="ph", tag="s"):
    """The host end of a flow arrow (``ac2g``: launch to kernel)."""

    cat: str = ""
    id: int | str | None = None
    pid: int | str = 0
    tid: int | str = 0
    ts: float = 0.0


class FlowEnd(FlowStart, tag="f"):
    """The device end of a flow arrow."""


class Skipped(msgspec.Struct, gc=False, tag_field="ph", tag="M"):
    """Any other phase (metadata, instants, counters, async, begin/end): decoded as nothing at all."""

    cat: ClassVar[str] = ""


MALFORMED_CAT = "\x00malformed"  # a category no real event has


class Malformed(msgspec.Struct, gc=False):
    """Stands in for an event the lenient converter could not use, so every record keeps the position
    of its event in the file (``Columns.origin``); the builder counts these as skipped."""

    cat: ClassVar[str] = MALFORMED_CAT


MALFORMED = Malformed()

# The other phases of the Chrome trace format; a phase outside this table makes the typed decode
# fail, and the loader falls back to its lenient per-event path.
_OTHER_PHASES = "BEiICbneTtpPONDRcSFVv()"
SKIPPED: tuple[type[Skipped], ...] = (
    Skipped,
    *(
        cast("type[Skipped]", msgspec.defstruct(f"Skipped_{ord(p)}", [], bases=(Skipped,), tag=p))
        for p in _OTHER_PHASES
    ),
)
DECODED: tuple[type, ...] = (Event, FlowStart, FlowEnd, *SKIPPED)
# What the decoders produce for each element of ``traceEvents``: one of the ``DECODED`` types.
AnyEvent = Union[DECODED]  # type: ignore[valid-type]  # noqa: UP007
# Two passes for large traces: spans without the flows (launches link by correlation id), and,
# only where some launch has no correlation id, the flows without the spans.
_SKIP_FLOWS = tuple(
    cast("type[Skipped]", msgspec.defstruct(f"Skipped_{ord(p)}", [], bases=(Skipped,), tag=p)) for p in "sf"
)
SPANS_ONLY: tuple[type, ...] = (Event, *_SKIP_FLOWS, *SKIPPED)
FLOWS_ONLY: tuple[type, ...] = (
    cast("type[Skipped]", msgspec.defstruct("Skipped_88", [], bases=(Skipped,), tag="X")),
    FlowStart,
    FlowEnd,
    *SKIPPED,
)
# The event array's decoder for the spans-only pass (every reader and the parallel workers).
SPANS_DECODER = msgspec.json.Decoder(list[Union[SPANS_ONLY]])  # type: ignore[valid-type]  # noqa: UP007


class DeviceProps(msgspec.Struct):
    name: str = ""


class DistributedInfo(msgspec.Struct):
    rank: int | None = None


class TraceDoc(msgspec.Struct):
    traceEvents: list[AnyEvent]  # noqa: N815 - Chrome trace field name
    deviceProperties: list[DeviceProps] = []  # noqa: N815
    distributedInfo: DistributedInfo | None = None  # noqa: N815

    def metadata(self) -> tuple[list[str], int | None]:
        """Device names and rank."""
        return [d.name for d in self.deviceProperties], self.distributedInfo.rank if self.distributedInfo else None


def code_table() -> defaultdict[Any, int]:
    """A value-to-code table that numbers new values as it meets them (0, 1, ...): looking a
    value up is all it takes, so a whole column is coded in one C-level pass (``encode``)."""
    return defaultdict(count().__next__)


# String and thread codes are 32-bit: a trace has far fewer than 2**31 distinct names, and half the
# bytes per span matters on traces of tens of millions of spans. Arithmetic that packs codes
# together (``classify``) widens them to 64 bits first.
Codes = NDArray[np.int32]


def encode(values: Iterable[Any], table: defaultdict[Any, int], n: int) -> Codes:
    """Codes of the ``n`` ``values`` in ``table`` (made by ``code_table``), adding new ones."""
    return np.fromiter(map(table.__getitem__, values), np.int32, n)


def _empty_f() -> NDArray[np.float64]:
    return np.empty(0, np.float64)


def _empty_i() -> NDArray[np.int64]:
    return np.empty(0, np.int64)


def _empty_c() -> Codes:
    return np.empty(0, np.int32)


@dataclass
class Columns:
    """Spans as columns: codes into the trace's tables, and their times.

    About 40 bytes a span, where a decoded event object with its strings takes several hundred:
    what keeps a multi-gigabyte trace in memory.
    """

    name: Codes = field(default_factory=_empty_c)  # into Trace.strings
    cat: Codes = field(default_factory=_empty_c)  # into Trace.strings
    thread: Codes = field(default_factory=_empty_c)  # into Trace.threads
    ts: NDArray[np.float64] = field(default_factory=_empty_f)
    dur: NDArray[np.float64] = field(default_factory=_empty_f)
    corr: NDArray[np.int64] = field(default_factory=_empty_i)  # correlation id, -1: none
    # Position among the events given to the builder; 32-bit while it fits (a file of fewer than
    # 2**31 events), which every trace short of hundreds of gigabytes is.
    origin: NDArray[np.integer[Any]] = field(default_factory=_empty_i)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def end(self) -> NDArray[np.float64]:
        return self.ts + self.dur

    def take(self, index: NDArray[np.int64]) -> Columns:
        """The rows at ``index`` (a released column stays empty)."""
        n = len(self)
        return Columns(*(c[index] if len(c) == n else c for c in (getattr(self, f) for f in _COLUMNS)))

    def sort_in_place(self, order: NDArray[np.int64]) -> None:
        """Reorder every column by ``order``, one column at a time (never two copies of the table);
        a released column stays empty."""
        n = len(self)
        for f in _COLUMNS:
            col = getattr(self, f)
            if len(col) == n:
                setattr(self, f, col[order])


_COLUMNS = ("name", "cat", "thread", "ts", "dur", "corr", "origin")
_EMPTY_COLUMN = {
    f: _empty_f() if f in ("ts", "dur") else _empty_c() if f in ("name", "cat", "thread") else _empty_i()
    for f in _COLUMNS
}


class ColumnStore:
    """Columns appended part by part (each decoded chunk's, each worker's piece) into arrays that
    grow by a quarter at a time: numpy's ``resize`` reallocates (glibc moves a block above its
    mmap threshold with ``mremap``, without copying it; a smaller one is copied) and zero-fills the
    new space. Each part is written once into the whole (concatenating parts at the end would
    touch twice the memory and copy everything once more), and the arrays hold at most a quarter
    more than they need until ``take`` trims them.
    """

    GROWTH = 1.25

    def __init__(self) -> None:
        self._empty()

    def _empty(self) -> None:
        self._cols = {f: np.empty(0, _EMPTY_COLUMN[f].dtype) for f in _COLUMNS}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, part: Columns) -> None:
        k = len(part)
        if not k:
            return
        end = self._n + k
        for f in _COLUMNS:
            src, buf = getattr(part, f), self._cols[f]
            if not self._n:  # the first part's types (32-bit origins, say), widened if need be
                buf = self._cols[f] = np.empty(0, src.dtype)
            wide = np.promote_types(buf.dtype, src.dtype)
            if wide != buf.dtype:  # 32-bit origins past 2**31 events
                buf = self._cols[f] = buf.astype(wide)
            if len(buf) < end:
                # No view of a buffer outlives a statement of this class: resizing in place is safe.
                buf.resize(max(end, int(len(buf) * self.GROWTH), 1024), refcheck=False)
            buf[self._n : end] = src
        self._n = end

    def drain(self) -> Columns:
        """The columns, trimmed to their length (in place, without a copy); the store is left empty."""
        cols = self._cols
        for buf in cols.values():
            buf.resize(self._n, refcheck=False)
        self._empty()
        return Columns(**cols)


class Span:
    """One row of a trace's columns, read as an object (for code that looks at a few spans)."""

    __slots__ = ("_trace", "_cols", "index")

    def __init__(self, trace: Trace, cols: Columns, index: int) -> None:
        self._trace = trace
        self._cols = cols
        self.index = index

    @property
    def name(self) -> str:
        return self._trace.strings[int(self._cols.name[self.index])]

    @property
    def cat(self) -> str:
        return self._trace.strings[int(self._cols.cat[self.index])]

    @property
    def pid(self) -> int | str:
        return self._trace.threads[int(self._cols.thread[self.index])][0]

    @property
    def tid(self) -> int | str:
        return self._trace.threads[int(self._cols.thread[self.index])][1]

    @property
    def ts(self) -> float:
        return float(self._cols.ts[self.index])

    @property
    def dur(self) -> float:
        return float(self._cols.dur[self.index])

    def __repr__(self) -> str:
        return f"Span({self.name!r}, cat={self.cat!r}, ts={self.ts}, dur={self.dur})"


class Spans(Sequence[Span]):
    """The rows of one column table, as a read-only sequence of ``Span``."""

    def __init__(self, trace: Trace, cols: Columns) -> None:
        self._trace = trace
        self._cols = cols

    def __len__(self) -> int:
        return len(self._cols)

    @overload
    def __getitem__(self, i: int) -> Span: ...
    @overload
    def __getitem__(self, i: slice) -> list[Span]: ...
    def __getitem__(self, i: int | slice) -> Span | list[Span]:
        if isinstance(i, slice):
            return [Span(self._trace, self._cols, j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return Span(self._trace, self._cols, i % n)

    def __iter__(self) -> Iterator[Span]:
        return (Span(self._trace, self._cols, j) for j in range(len(self)))


@dataclass
class Trace:
    """A loaded trace, as columns: host spans (sorted by thread and time, nested), device events
    (kernels, memcpy, memset, in file order), and the GPU-side annotations as events.

    ``parent[i]`` is the innermost host span enclosing host span ``i`` on its thread, ``child[i]``
    the time its direct children cover (self time = dur - child), ``link[k]`` the host span
    (runtime call) that launched device event ``k``; -1 means none.
    """

    path: str
    spans: Columns = field(default_factory=Columns)
    kernels: Columns = field(default_factory=Columns)
    strings: list[str] = field(default_factory=list)
    threads: list[tuple[int | str, int | str]] = field(default_factory=list)
    parent: NDArray[np.int64] = field(default_factory=_empty_i)
    link: NDArray[np.int64] = field(default_factory=_empty_i)
    gpu_annotations: list[Event] = field(default_factory=list)
    device_names: list[str] = field(default_factory=list)
    rank: int | None = None
    partial: bool = False
    skipped_events: int = 0
    ids_missing: bool = False  # some launch or device event had no correlation id (flows may link it)
    out_of_range: int = 0  # events dropped by the input policy's number check
    string_ids: defaultdict[str, int] = field(default_factory=code_table, repr=False, compare=False)
    _child: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)

    @property
    def child(self) -> NDArray[np.float64]:
        """Computed when first read (only CPU-only analysis needs self times)."""
        if self._child is None or len(self._child) != len(self.parent):
            self._child = child_time(self.parent, self.spans.dur)
        return self._child

    @property
    def kind(self) -> Literal["gpu", "cpu"]:
        return "gpu" if len(self.kernels) else "cpu"

    @property
    def host(self) -> Spans:
        return Spans(self, self.spans)

    @property
    def device(self) -> Spans:
        return Spans(self, self.kernels)

    def code(self, s: str) -> int:
        """The code of string ``s`` in this trace's table, or -1."""
        return self.string_ids.get(s, -1)

    def host_mask(self, cats: frozenset[str]) -> NDArray[np.bool_]:
        """Which host spans have a ``cat`` in ``cats``."""
        want = [c for c in map(self.code, cats) if c >= 0]
        return np.isin(self.spans.cat, want) if want else np.zeros(len(self.spans), bool)
