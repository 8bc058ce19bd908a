"""The analyses: small functions that sum an ``Attribution`` into typed results.

Each takes the attribution (already restricted to a window, if any) and returns plain data;
``analyze_trace`` and the report call the ones they need. Sums run over integer codes with
``np.bincount``, never per item in Python.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tracekit.analysis.attribute import Attribution
from tracekit.analysis.busy import union_length_arrays
from tracekit.analysis.result import CategoryTime, KernelRow, PhaseResult
from tracekit.analysis.rules import CATEGORIES


def _sums(index: NDArray[np.int64], weights: NDArray[np.float64], size: int) -> tuple[list[float], list[int]]:
    """Total weight and count per index value ``0 .. size-1``."""
    return (
        np.bincount(index, weights=weights, minlength=size).tolist(),
        np.bincount(index, minlength=size).tolist(),
    )


def _in_first_order(values: NDArray[np.int64]) -> tuple[list[int], list[int]]:
    """The distinct ``values`` in order of first appearance, and where each first appears."""
    if not len(values):
        return [], []
    uniq, first = np.unique(values, return_index=True)
    order = np.argsort(first, kind="stable")
    return uniq[order].tolist(), first[order].tolist()


def category_totals(att: Attribution) -> dict[str, CategoryTime]:
    """Device time and item count per category (every standard category, even when empty)."""
    times, counts = _sums(att.category, att.time, len(att.categories))
    return {c: CategoryTime(times[i], counts[i]) for i, c in enumerate(att.categories) if counts[i] or c in CATEGORIES}


def unlinked_and_graph(att: Attribution) -> tuple[float, int, float, int]:
    """Device time and count of the work with no launch in the trace (a previous step's tail, work
    launched before profiling began), and of the work replayed from CUDA/HIP graphs. Both are in
    the categories too; these say how much of them rests on the kernel name alone."""
    if att.device != "gpu":
        return 0.0, 0, 0.0, 0
    unlinked = att.node < 0
    return (
        float(att.time[unlinked].sum()),
        int(np.count_nonzero(unlinked)),
        float(att.time[att.graph].sum()),
        int(np.count_nonzero(att.graph)),
    )


def busy_time(att: Attribution, lo: float, hi: float) -> float:
    """How long within ``[lo, hi]`` the device did any work (the union of the busy intervals)."""
    return union_length_arrays(att.busy_ts, att.busy_end, lo, hi)


def kernel_rows(att: Attribution) -> list[KernelRow]:
    """One row per (name, category, rule), longest first, with its shortest, longest and median
    launch; rows with equal time keep the order in which their work first appears."""
    times, counts = _sums(att.code, att.time, len(att.decisions))
    strings = att.trace.strings
    rows: dict[tuple[str, str, str], int] = {}  # key -> index into ``out``
    out: list[KernelRow] = []
    row_of_code = np.zeros(len(att.decisions), np.int64)
    for code, first in zip(*_in_first_order(att.code)):
        d = att.decisions[code]
        key = (strings[int(att.name[first])], d.category, d.rule)
        i = rows.setdefault(key, len(out))
        if i == len(out):
            out.append(KernelRow(key[0], d.category, d.rule, 0, 0.0))
        row_of_code[code] = i
        out[i].count += counts[code]
        out[i].time_us += times[code]
    _launch_stats(att.time, row_of_code[att.code], out)
    return sorted(out, key=lambda r: -r.time_us)


def _launch_stats(time: NDArray[np.float64], item_row: NDArray[np.int64], rows: list[KernelRow]) -> None:
    """Each row's shortest, longest and median launch, from one sort of every item by (row, time)."""
    if not len(time):
        return
    t = time[np.lexsort((time, item_row))]
    n = np.bincount(item_row, minlength=len(rows))
    start = np.concatenate(([0], np.cumsum(n)[:-1]))
    mid = (t[start + (n - 1) // 2] + t[start + n // 2]) / 2
    for i, row in enumerate(rows):
        row.min_us, row.max_us, row.p50_us = float(t[start[i]]), float(t[start[i] + n[i] - 1]), float(mid[i])


def _local_phases(att: Attribution) -> tuple[NDArray[np.bool_], NDArray[np.int64], list[int]]:
    """Which items have a phase, their phase numbered locally, and the attribution's key of each
    local number. Phases reached through a host annotation come first, in order of first work,
    then those found by time."""
    has = att.phase >= 0
    through_host = att.phase_node >= 0
    keys, _ = _in_first_order(att.phase[has & through_host])
    seen = set(keys)
    keys += [k for k in _in_first_order(att.phase[has & ~through_host])[0] if k not in seen]
    lut = np.full(len(att.phase_keys), -1, np.int64)
    lut[np.array(keys, np.int64)] = np.arange(len(keys))
    return has, lut[att.phase[has]], keys


def phase_results(att: Attribution) -> list[PhaseResult]:
    """One result per phase (prefill chunk, decode step, profiler step), in time order.

    A phase spans its host annotation (the step as the program lived it, so host overhead between
    kernels counts as device idle time) and, on GPU traces, all of its device work, which can
    outlast the annotation (asynchronous launches). On GPU traces a phase starts no earlier than
    the device finished the work before its first work: where the host runs ahead of a busy device
    (training, deep launch queues), the time the device spent on earlier work is not this step's
    idle time."""
    if not (att.phase >= 0).any():
        return []
    has, local, keys = _local_phases(att)
    nkeys, ncat = len(keys), len(att.categories)
    # Totals per (phase, category): one bincount over the flat index phase * ncat + category.
    ptimes, pcounts = _sums(local * ncat + att.category[has], att.time[has], nkeys * ncat)
    spans = _phase_spans(att, has, local, keys)
    order = np.argsort(local, kind="stable")
    bounds = np.searchsorted(local[order], np.arange(nkeys + 1))
    ts_sorted, end_sorted = att.ts[has][order], att.end[has][order]
    gpu = att.device == "gpu"
    limits = _gpu_limits(att, keys, spans, ts_sorted, end_sorted, bounds) if gpu else {}
    results: list[PhaseResult] = []
    for i, key_id in enumerate(keys):
        key = att.phase_keys[key_id]
        us, ue = ts_sorted[bounds[i] : bounds[i + 1]], end_sorted[bounds[i] : bounds[i + 1]]
        if gpu:
            s, e = limits[i]
            busy = union_length_arrays(us, ue, s, e)
        else:
            s, e = spans.get(i, (float(us.min()), float(ue.max())))
            busy = union_length_arrays(att.busy_ts, att.busy_end, s, e)
        row = i * ncat
        cats = {
            att.categories[c]: CategoryTime(ptimes[row + c], pcounts[row + c]) for c in range(ncat) if pcounts[row + c]
        }
        results.append(
            PhaseResult(
                phase=key.phase,
                step=key.step,
                context_tokens=key.context_tokens,
                time_us=sum(c.time_us for c in cats.values()),
                span_us=e - s,
                busy_us=busy,
                idle_us=max(0.0, (e - s) - busy),
                start_us=s,
                categories=cats,
                requests=key.requests,
                query_tokens=key.query_tokens,
                kv_tokens=key.kv_tokens,
                source=key.source,
                note=key.note,
                host_span=spans.get(i),
            )
        )
    results.sort(key=lambda p: p.start_us)
    return results


def _gpu_limits(
    att: Attribution,
    keys: list[int],
    spans: dict[int, tuple[float, float]],
    ts_sorted: NDArray[np.float64],
    end_sorted: NDArray[np.float64],
    bounds: NDArray[np.int64],
) -> dict[int, tuple[float, float]]:
    """Start and end of each GPU phase: its annotation and all of its work, starting no earlier
    than the device finished the work that ran before the phase's first work."""
    ends = np.sort(att.end)
    out: dict[int, tuple[float, float]] = {}
    for i in range(len(keys)):
        first_t = float(ts_sorted[bounds[i] : bounds[i + 1]].min())
        last_t = float(end_sorted[bounds[i] : bounds[i + 1]].max())
        s, e = spans.get(i, (first_t, last_t))
        before = int(np.searchsorted(ends, first_t, side="right"))
        busy_until = float(ends[before - 1]) if before else s
        out[i] = (min(max(s, busy_until), first_t), max(e, last_t))
    return out


def _phase_spans(
    att: Attribution, has: NDArray[np.bool_], local: NDArray[np.int64], keys: list[int]
) -> dict[int, tuple[float, float]]:
    """The host span of each phase's annotation (the one its first work came through); on GPU
    traces, for phases found by time, their device-side span (``PhaseIndex``)."""
    spans: dict[int, tuple[float, float]] = {}
    through = att.phase_node[has]
    hit = np.flatnonzero(through >= 0)
    host = att.trace.spans
    for k, i in zip(*_in_first_order(local[hit])):
        h = int(through[hit[i]])
        spans[k] = (float(host.ts[h]), float(host.end[h]))
    if att.device == "gpu":
        local_of = {att.phase_keys[g]: n for n, g in enumerate(keys)}
        for key, (lo, hi) in att.phase_ranges.items():
            local_id = local_of.get(key)
            if local_id is not None and local_id not in spans:
                spans[local_id] = (lo, hi)
    return spans


def phase_kernel_rows(att: Attribution) -> dict[str, list[KernelRow]]:
    """Kernel rows per phase name (all decode steps together, all prefill chunks together)."""
    has = att.phase >= 0
    if not has.any():
        return {}
    ncodes = len(att.decisions)
    code, phase, name, time = att.code[has], att.phase[has], att.name[has], att.time[has]
    # One integer per (phase, code) pair: phase * ncodes + code.
    combo = phase * ncodes + code
    uniq, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
    times, counts = _sums(inverse.reshape(-1).astype(np.int64), time, len(uniq))
    strings = att.trace.strings
    rows: dict[tuple[str, str, str, str], KernelRow] = {}
    for j in np.argsort(first, kind="stable").tolist():
        d = att.decisions[int(code[first[j]])]
        phase_name = att.phase_keys[int(phase[first[j]])].phase
        key = (phase_name, strings[int(name[first[j]])], d.category, d.rule)
        row = rows.get(key)
        if row is None:
            row = rows[key] = KernelRow(key[1], d.category, d.rule, 0, 0.0)
        row.count += counts[j]
        row.time_us += times[j]
    out: dict[str, list[KernelRow]] = {}
    for (phase_name, *_), row in rows.items():
        out.setdefault(phase_name, []).append(row)
    for lst in out.values():
        lst.sort(key=lambda r: -r.time_us)
    return out


def merge_phases(phases: list[PhaseResult]) -> list[PhaseResult]:
    """All steps of each phase name summed into one row (``--by phase``)."""
    merged: dict[str, PhaseResult] = {}
    for p in phases:
        m = merged.get(p.phase)
        if m is None:
            m = merged[p.phase] = PhaseResult(p.phase, None, None, 0.0, 0.0, 0.0, 0.0, p.start_us, {})
        m.time_us += p.time_us
        m.span_us += p.span_us
        m.busy_us += p.busy_us
        m.idle_us += p.idle_us
        for k, v in p.categories.items():
            c = m.categories.setdefault(k, CategoryTime())
            c.time_us += v.time_us
            c.count += v.count
    return list(merged.values())
