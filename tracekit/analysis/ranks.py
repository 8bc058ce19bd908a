"""What a per-rank table needs from one trace: its rank, its exposed communication, its step times.

Distributed jobs write one trace per rank. The rank comes from the trace's own
``distributedInfo.rank`` (torch.distributed writes it), else from the file name (``rank-3``,
``rank_3``, ``rank3``: the names HTA and most launch scripts use) or its folder's; the source is
kept so a table can say which.

Communication that overlaps compute on the same rank costs nothing; the rest (exposed
communication) is what a faster interconnect or better overlap would win back. It is an interval
computation over the attribution: ``|comm ∪ compute| - |compute|``, the time communication runs
while no compute does.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tracekit.analysis.attribute import Attribution
from tracekit.analysis.busy import union_length_arrays
from tracekit.analysis.result import AnalysisResult

COMMUNICATION = "communication"
ATTENTION = "attention"
# Copies and fills are neither communication nor compute: they hide no communication.
NOT_COMPUTE = frozenset({COMMUNICATION, "memcpy", "memset"})
# Phases that are steps (a training or serving step, a decode step); prefill chunks are not.
STEP_PHASES = frozenset({"step", "decode"})

_RANK_IN_NAME = re.compile(r"(?:^|[^a-z0-9])rank[-_]?(\d+)(?![0-9])", re.IGNORECASE)


def rank_of(path: str, trace_rank: int | None) -> tuple[int | None, str | None]:
    """The rank of a trace and where it came from: ``distributedInfo``, ``file name``, or (None, None)."""
    if trace_rank is not None:
        return trace_rank, "distributedInfo"
    p = Path(path)
    for part in (p.name, p.parent.name):
        m = _RANK_IN_NAME.search(part)
        if m:
            return int(m.group(1)), "file name"
    return None, None


def communication_exposure(att: Attribution, lo: float, hi: float) -> float:
    """How long within ``[lo, hi]`` communication ran while no compute did (µs)."""
    codes = {c: i for i, c in enumerate(att.categories)}
    if COMMUNICATION not in codes:
        return 0.0
    comm = att.category == codes[COMMUNICATION]
    if not comm.any():
        return 0.0
    other = np.isin(att.category, [codes[c] for c in NOT_COMPUTE if c in codes])
    compute = ~other
    both = comm | compute
    covered = union_length_arrays(att.ts[both], att.end[both], lo, hi)
    return max(0.0, covered - union_length_arrays(att.ts[compute], att.end[compute], lo, hi))


def step_times(res: AnalysisResult) -> list[float]:
    """Each step's span (µs): the training/serving or decode steps of the result, else its window."""
    steps = [p.span_us for p in res.phases if p.phase in STEP_PHASES]
    return steps or [res.window.dur_us]
