"""Every launch of device work as a table: the one API table that holds a row per event."""

from __future__ import annotations

from typing import Any

from tracekit.analysis.attribute import Attribution, attribute
from tracekit.analysis.kernel_id import identity
from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.window import find_window
from tracekit.api.columns import LAUNCH_KINDS
from tracekit.api.table import Table
from tracekit.trace.model import Trace
from tracekit.trace.read import ReadOptions, load_trace


def launches(results: list[AnalysisResult], traces: dict[str, Trace], window: str | None, read: ReadOptions) -> Table:
    """The device work of each result's trace (``traces`` where already loaded, else read again),
    within ``window``, in file order."""
    cols: dict[str, list[Any]] = {k: [] for k in LAUNCH_KINDS}
    for r in results:
        trace = traces.get(r.path) or load_trace(r.path, options=read)
        att = attribute(trace)
        if window is not None:
            att = att.within(find_window(trace, window))
        strings = trace.strings
        names = [strings[i] for i in att.name.tolist()]
        ids = {n: identity(n) for n in set(names)}
        stream = _streams(trace, att)
        keys = att.phase_keys
        n = len(att)
        cols["trace"] += [r.path] * n
        cols["name"] += names
        cols["kernel"] += [ids[x] for x in names]
        cols["category"] += [att.categories[c] for c in att.category.tolist()]
        cols["rule"] += [att.decisions[c].rule for c in att.code.tolist()]
        cols["stream"] += stream
        cols["start_us"] += att.ts.tolist()
        cols["dur_us"] += (att.end - att.ts).tolist()
        cols["time_us"] += att.time.tolist()
        ph = [keys[i] if i >= 0 else None for i in att.phase.tolist()]
        cols["phase"] += [k.phase if k else None for k in ph]
        cols["step"] += [k.step if k else None for k in ph]
        cols["context_tokens"] += [k.context_tokens if k else None for k in ph]
    return Table("launches", LAUNCH_KINDS, cols)


def _streams(trace: Trace, att: Attribution) -> list[str]:
    """Each item's stream (GPU: the device event's thread, which Kineto sets to the stream) or
    thread (CPU-only traces)."""
    if att.device == "gpu":
        codes = trace.kernels.thread
        where = {int(o): i for i, o in enumerate(trace.kernels.origin.tolist())}
        threads = [codes[where[int(o)]] for o in att.origin.tolist()]
    else:
        threads = trace.spans.thread[att.node].tolist()
    return [f"{trace.threads[t][0]}:{trace.threads[t][1]}" for t in threads]
