"""Analyze many traces: in this process, on an embedded Dask cluster, or on an existing one.

Every way runs the same task (``fleet.task.analyze_file``) and hands back the same
``Outcome``: the partials and failures in input order, so the summary merged from them does not
depend on where they ran. Dask is imported only when a cluster is used (``cluster``): one trace,
or ``--workers 1``, never loads it.
"""

from __future__ import annotations

import importlib.util

from tracekit.cores import usable_cores
from tracekit.errors import UserError
from tracekit.fleet.plan import Collector, Listener, Outcome, Plan, Silent
from tracekit.fleet.task import Failure, TaskOptions, analyze_file, json_bytes, one_line

# Starting and stopping the embedded cluster costs about what one core takes to analyze this much
# JSON (make bench-scale; docs/performance.md): below it, several traces run faster here.
CLUSTER_WORTH_BYTES = 256 * 10**6


def default_workers(paths: list[str]) -> int:
    """One worker per usable core, never more than there are traces; 1 (this process, no Dask) when
    the traces hold too little JSON to pay for starting a cluster (``CLUSTER_WORTH_BYTES``)."""
    n = max(1, min(usable_cores(), len(paths)))
    if n > 1 and sum(json_bytes(p) for p in paths) < CLUSTER_WORTH_BYTES:
        return 1
    return n


def run(paths: list[str], options: TaskOptions, plan: Plan, listener: Listener | None = None) -> Outcome:
    """Analyze ``paths`` as ``plan`` says; Ctrl-C stops early with what finished (``interrupted``)."""
    listener = listener or Silent()
    if plan.in_process:
        return run_here(paths, options, listener)
    if importlib.util.find_spec("distributed") is None:
        raise UserError(
            "several traces run on Dask, which is not installed: pip install 'dask[distributed]' (or --workers 1)"
        )
    from tracekit.fleet.cluster import run_on_dask

    return run_on_dask(paths, options, plan, listener)


def run_here(paths: list[str], options: TaskOptions, listener: Listener) -> Outcome:
    """One trace after another in this process: no Dask, the same results."""
    got = Collector(paths, listener)
    try:
        for i, path in enumerate(paths):
            listener.update(got.done, got.failed, 1)
            try:
                r = analyze_file(path, options)
            except Exception as exc:  # a fault outside the input: listed, and the others go on
                r = Failure(path, one_line(exc))
            got.add(i, r, 0)
    except KeyboardInterrupt:
        return got.outcome(interrupted=True)
    return got.outcome()
