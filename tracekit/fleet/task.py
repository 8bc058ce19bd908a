"""One trace's analysis as a small, mergeable partial: what a task sends back to the driver.

A partial holds sums and a few rows (categories, busy/idle, unlinked and graph time, one row per
phase or step, the longest kernels), never event arrays, so a driver that merges thousands of them
stays small. ``analyze_file`` is the task: it runs the same way in-process and on a Dask worker,
and turns a bad trace into a ``Failure`` (one line) instead of raising, so the other traces finish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.attribute import Attribution, attribute
from tracekit.analysis.ranks import COMMUNICATION, communication_exposure, rank_of, step_times
from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.steps import StepTable
from tracekit.analysis.window import find_windows, merged_window
from tracekit.errors import InputError, TraceFormatError, TracekitError
from tracekit.trace.model import Trace
from tracekit.trace.read import ReadOptions, decoded_size, load_trace

if TYPE_CHECKING:  # the facts' module loads only with TaskOptions.limits (analyze --by step/kernel)
    from tracekit.limits.trace_facts import TraceFacts

TOP_KERNELS = 20

# Peak memory of loading and analyzing a trace, per byte of its JSON, with headroom: below the
# chunked reader's threshold the whole text, its decoded records and the columns are alive at once;
# above it, a few MB of text at a time (docs/performance.md, Memory a trace takes).
WHOLE_FACTOR = 3.5
CHUNKED_FACTOR = 1.2


@dataclass(frozen=True)
class TaskOptions:
    """What every task of one run is asked for. ``kernels``: ``top`` keeps the ``TOP_KERNELS``
    longest kernel rows, ``all`` every row (``--by kernel``), ``match`` those whose name matches
    ``explain``; ``read``: how each trace is read (built once by the command line)."""

    window: str | None = None
    partial: bool = False
    hta: bool = False
    kernels: Literal["top", "all", "match"] = "top"
    explain: str | None = None
    read: ReadOptions = field(default_factory=ReadOptions)
    window_all: bool = False  # sum every window --window matches, not only the earliest
    phase: str | None = None  # only this phase's work ("decode", "prefill"); None or "all": everything
    steps: bool = False  # also make the step table (``analysis.steps``)
    limits: bool = False  # also read what the trace says of the limits (``limits.trace_facts``)


@dataclass
class Failure:
    path: str
    error: str  # one line: what is wrong with this trace


@dataclass
class TracePartial:
    result: AnalysisResult  # kernel rows trimmed as ``TaskOptions.kernels`` says; no per-phase kernel rows
    rank: int | None = None
    rank_source: str | None = None  # "distributedInfo" or "file name"
    exposed_communication_us: float = 0.0
    step_us: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # from the HTA bridge
    steps: StepTable | None = None  # with ``TaskOptions.steps``: columns, a few numbers a step
    facts: TraceFacts | None = None  # with ``TaskOptions.limits``: device name, shapes, kernels' work

    @property
    def communication_us(self) -> float:
        c = self.result.categories.get(COMMUNICATION)
        return c.time_us if c else 0.0


def one_line(exc: BaseException) -> str:
    """What went wrong, in one line; an error about an input file leaves out its path (a failure
    lists it apart); the exception's type leads unless it is one of tracekit's own."""
    text = exc.detail if isinstance(exc, InputError) else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if isinstance(exc, TracekitError) else f"{type(exc).__name__}: {first}"


def analyze_file(path: str, options: TaskOptions, *, source: str | None = None) -> TracePartial | Failure:
    """Load and analyze one trace into a partial; a trace tracekit cannot use becomes a ``Failure``.

    ``path`` is the name the results carry, ``source`` the file to read when that differs (the
    absolute path a worker with another working directory needs). Only errors about the input
    (``TracekitError``) and running out of memory are caught: anything else is a fault of the
    machine or of tracekit, and propagates (a Dask task is then retried)."""
    try:
        return _analyze(path, source or path, options)
    except MemoryError:
        return Failure(path, "ran out of memory while analyzing it")
    except TracekitError as exc:
        return Failure(path, one_line(exc))


def _exposed(trace: Trace, att: Attribution, res: AnalysisResult, options: TaskOptions) -> float:
    """Exposed communication within what was analyzed: each summed window, the phase's work, the window."""
    if options.window is not None and options.window_all:
        wins = merged_window(find_windows(trace, options.window), options.window)
        return sum(communication_exposure(att.within(w), w.start_us, w.end_us) for w in wins)
    if options.window is None and options.phase not in (None, "all"):
        sel = att.in_phase(options.phase or "")
        if not len(sel):
            return 0.0
        return communication_exposure(sel, float(sel.ts.min()), float(sel.end.max()))
    sel = att.within(res.window) if options.window is not None else att
    return communication_exposure(sel, res.window.start_us, res.window.end_us)


def _analyze(path: str, source: str, options: TaskOptions) -> TracePartial:
    trace = load_trace(source, partial=options.partial, options=options.read)
    trace.path = path
    return partial_of(trace, options, source=source)


def analyze_loaded(trace: Trace, options: TaskOptions) -> TracePartial | Failure:
    """``analyze_file`` for a trace already in memory (the Python API's loaded traces)."""
    source = trace.path if Path(trace.path).is_file() else None  # where the shapes pass can read it again
    try:
        return partial_of(trace, options, source=source)
    except TracekitError as exc:
        return Failure(trace.path, one_line(exc))


def partial_of(trace: Trace, options: TaskOptions, *, source: str | None = None) -> TracePartial:
    """The partial of a loaded trace; ``source`` is its file, which the HTA bridge reads again."""
    path = trace.path
    att = attribute(trace)
    res = analyze_trace(trace, options.window, attribution=att, window_all=options.window_all, phase=options.phase)
    exposed = _exposed(trace, att, res, options)
    notes: list[str] = [f"{path}: {n}" for n in res.notes]
    if options.hta and source is not None:
        from tracekit.analysis.hta_bridge import hta_summary

        res.extra["hta"], hta_notes = hta_summary(Path(source), trace)  # HTA reads the file itself
        notes += [n.replace(source, path) for n in hta_notes]
    if options.kernels == "match" and options.explain is not None:
        pattern = re.compile(options.explain)
        kernels = [k for k in res.kernels if pattern.search(k.name)]
    elif options.kernels == "all":
        kernels = res.kernels
    else:
        kernels = res.kernels[:TOP_KERNELS]
    rank, rank_source = rank_of(path, trace.rank)
    comm = res.categories.get(COMMUNICATION)
    sel = _selection(att, res, options)
    steps = _steps(res, sel, source, options.read) if options.steps else None
    facts = None
    if options.limits and source is not None:  # the facts' shapes pass reads the file again
        from tracekit.limits.trace_facts import trace_facts
        from tracekit.trace.read import read_text

        file = source
        facts = trace_facts(sel, res, lambda: read_text(file, options.read))
    return TracePartial(
        result=replace(res, kernels=kernels, kernels_by_phase={}),
        rank=rank,
        rank_source=rank_source,
        exposed_communication_us=min(exposed, comm.time_us) if comm else 0.0,
        step_us=step_times(res),
        notes=notes,
        steps=steps,
        facts=facts,
    )


def _selection(att: Attribution, res: AnalysisResult, options: TaskOptions) -> Attribution:
    """The items the result was made of: the window's, the phase's, or all of them."""
    if options.window is not None and not options.window_all:
        return att.within(res.window)
    if options.window is None and options.phase not in (None, "all"):
        return att.in_phase(options.phase or "")
    return att


def _steps(res: AnalysisResult, att: Attribution, source: str | None, read: ReadOptions) -> StepTable:
    """The step table of one trace; steps whose annotation has no context take it from the
    attention operator's input shapes (a second, narrow read of the file, only when one can: a
    trace built in memory has no file to read, and its steps keep an unknown context)."""
    from tracekit.analysis.shapes import attention_context, needs_shapes
    from tracekit.analysis.steps import step_table
    from tracekit.trace.read import read_text

    if source is None or not needs_shapes(res):
        return step_table(res, {})
    file = source
    return step_table(res, attention_context(att, res, lambda: read_text(file, read)))


def json_bytes(path: str) -> int:
    """How much JSON ``path`` holds (gzip's stored size, else the file's), without reading it; 0 for
    a file that cannot be read (its task then says why)."""
    try:
        return decoded_size(path)
    except (OSError, TraceFormatError):
        return 0


def memory_needed(path: str, chunked_from: int) -> int:
    """A generous estimate of the peak bytes analyzing ``path`` takes, from its JSON size: what the
    scheduler budgets before any worker reads the file (files past ``chunked_from`` bytes of JSON
    are read in chunks)."""
    size = json_bytes(path)
    whole = min(size, chunked_from)
    return int(WHOLE_FACTOR * whole + CHUNKED_FACTOR * (size - whole))
