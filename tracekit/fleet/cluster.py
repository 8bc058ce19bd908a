"""Traces as Dask tasks: on an embedded ``LocalCluster``, or on an existing cluster by address.

The embedded cluster is processes, one thread each (the analysis is numpy and Python: threads
would share one interpreter lock), each with a memory limit, one per usable core by default.
Dask handles what a home-made pool would get wrong: a worker that dies is replaced and its task
runs again elsewhere (once: ``allowed-failures`` is 1 here; an existing cluster keeps its own
setting), a task that raises is retried once (``retries=1``), and the same code runs on a SLURM,
Kubernetes or SSH cluster started with Dask's own tools.

Memory: each trace's peak is estimated from its JSON size before any worker reads it
(``task.memory_needed``). A trace that would not fit in a worker's memory limit is failed at once
with that reason. One thread per worker means a worker analyzes one trace at a time, so the
embedded cluster is never oversubscribed; on an existing cluster whose workers advertise a
``MEMORY`` resource (``dask worker --resources MEMORY=8e9``), each task asks for its estimate, so
a worker with several threads runs only what fits. Bigger traces are given a higher priority, so
they start first and the run does not end on one big trace alone.

Dask is quiet here: no dashboard, its logs and warnings kept off the user's terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tracekit.errors import UserError
from tracekit.fleet.plan import Collector, Listener, Outcome, Plan
from tracekit.fleet.task import Failure, TaskOptions, TracePartial, analyze_file, memory_needed, one_line
from tracekit.trace.heap import DASK_WORKER_ENV
from tracekit.units import format_size, parse_size

# A worker's own memory before any trace (Python, numpy, Dask, tracekit), with headroom.
WORKER_BASE = 256 * 2**20
WORKERS_TIMEOUT_S = 30
_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,  # a task whose worker dies runs once more, then fails
    "distributed.worker.memory.target": False,  # nothing to spill: tasks keep no data
    "distributed.worker.memory.spill": False,
    "distributed.worker.daemon": True,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.profile.enabled": False,  # its 10 ms stack sampling competes with the task
    **DASK_WORKER_ENV,  # the allocator's settings (trace.heap)
}


@dataclass
class Capacity:
    threads: int
    memory_limit: int  # the largest worker's, bytes; 0: no limit
    memory_resource: float  # the largest MEMORY resource, when every worker advertises one; else 0


def run_on_dask(paths: list[str], options: TaskOptions, plan: Plan, listener: Listener) -> Outcome:
    import dask

    _quiet()
    with dask.config.set(_CONFIG), _connect(plan) as client:
        return _run(client, paths, options, listener)


def _quiet() -> None:
    """Keep Dask's logs and warnings (ports, event-loop lag, closing workers) off the terminal."""
    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"(distributed|dask)(\.|$)")


@contextlib.contextmanager
def _connect(plan: Plan) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if plan.scheduler is not None:
        try:
            client = Client(plan.scheduler, set_as_default=False)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(
                f"cannot reach the Dask scheduler at {plan.scheduler} ({exc}); start one with 'dask scheduler', "
                "or leave out --scheduler and DASK_SCHEDULER_ADDRESS to run here"
            ) from None
        with _closing(client):
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
            except TimeoutError:
                raise UserError(
                    f"the Dask scheduler at {plan.scheduler} has no workers after {WORKERS_TIMEOUT_S} s; "
                    f"start some with 'dask worker {plan.scheduler}'"
                ) from None
            yield client
        return
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=plan.workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=_memory_limit(plan),
        dashboard_address=None,
        silence_logs=logging.CRITICAL,
        env={"PYTHONWARNINGS": "ignore"},
        preload=["tracekit.fleet.worker_setup"],
    )
    with _closing(cluster), _closing(Client(cluster, set_as_default=False)) as client:  # type: ignore[no-untyped-call]
        yield client


@contextlib.contextmanager
def _closing(thing: Any) -> Iterator[Any]:
    """Close a client or cluster on the way out, whatever happened; a close that fails (workers
    already gone after Ctrl-C) is not the user's problem."""
    try:
        yield thing
    finally:
        with contextlib.suppress(Exception):
            thing.close()


def _memory_limit(plan: Plan) -> int:
    from distributed.system import MEMORY_LIMIT

    if plan.memory_limit is None:
        return int(MEMORY_LIMIT // max(1, plan.workers))
    try:
        return parse_size(plan.memory_limit)
    except ValueError:
        raise UserError(f"--memory-limit {plan.memory_limit!r} is not a size (example: --memory-limit 4GB)") from None


def _capacity(client: Any) -> Capacity:
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    resources = [float((w.get("resources") or {}).get("MEMORY", 0)) for w in workers]
    return Capacity(
        threads=sum(int(w.get("nthreads", 1)) for w in workers),
        memory_limit=0 if not limits or 0 in limits else max(limits),
        memory_resource=max(resources) if resources and all(r > 0 for r in resources) else 0.0,
    )


def _run(client: Any, paths: list[str], options: TaskOptions, listener: Listener) -> Outcome:
    from distributed import as_completed

    cap = _capacity(client)
    budget = cap.memory_limit - WORKER_BASE if cap.memory_limit else None
    got = Collector(paths, listener)
    token = uuid.uuid4().hex[:12]  # keys unique to this run: several drivers may share a cluster
    index: dict[str, int] = {}
    futures = []
    for i, path in enumerate(paths):
        need = memory_needed(path, options.read.chunked_from)
        refused = _refusal(need, budget, cap)
        if refused:
            got.add(i, Failure(path, refused), 0)
            continue
        extra = {"resources": {"MEMORY": need}} if cap.memory_resource else {}
        fut = client.submit(
            analyze_file,
            path,
            options,
            source=os.path.abspath(path),  # workers may run in another directory
            key=f"tracekit-analyze-{token}-{i}",
            priority=need,
            retries=1,
            pure=False,
            **extra,
        )
        index[fut.key] = i
        futures.append(fut)
    pending = len(futures)
    listener.update(got.done, got.failed, min(pending, cap.threads))
    remaining = set(futures)
    try:
        for fut in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
            remaining.discard(fut)
            pending -= 1
            i = index[fut.key]
            try:
                r = _result(fut, paths[i], cap)
            except UserError:
                _cancel(client, remaining)
                raise
            fut.release()
            got.add(i, r, min(pending, cap.threads))
    except KeyboardInterrupt:
        _cancel(client, remaining)
        return got.outcome(interrupted=True)
    return got.outcome()


def _refusal(need: int, budget: int | None, cap: Capacity) -> str | None:
    """Why a trace needing ``need`` bytes cannot run on this cluster, or None."""
    if budget is not None and need > budget:
        return (
            f"needs about {format_size(need)} to analyze, over the worker memory limit ({format_size(cap.memory_limit)}); "
            "give workers more memory (--memory-limit)"
        )
    if cap.memory_resource and need > cap.memory_resource:
        return f"needs about {format_size(need)} to analyze, more than any worker's MEMORY resource ({format_size(cap.memory_resource)})"
    return None


def _cancel(client: Any, futures: set[Any]) -> None:
    with contextlib.suppress(Exception):
        client.cancel(list(futures), force=True)


def _result(fut: Any, path: str, cap: Capacity) -> TracePartial | Failure:
    """A finished task's partial, or why it failed; a cluster that cannot run tracekit at all is
    the user's to fix, once (``UserError``), not a failure per trace."""
    if fut.status == "finished":
        r: TracePartial | Failure = fut.result()
        return r
    if fut.status != "error":
        return Failure(path, f"its task was {fut.status} (the cluster lost it)")
    exc = fut.exception()
    if _cannot_load(exc):
        cause = exc.__cause__ or exc
        raise UserError(
            f"the Dask cluster cannot load tracekit's task ({type(cause).__name__}: {cause}); "
            "install this version of tracekit on its scheduler and workers"
        )
    return _failure(path, exc, cap)


def _cannot_load(exc: BaseException | None) -> bool:
    """Whether the scheduler or a worker failed to unpickle the task: a cluster without tracekit
    (or another version of it), where no trace can run. Dask raises a RuntimeError whose cause is
    the unpickling error (a module or a name it cannot import)."""
    return isinstance(exc, RuntimeError) and isinstance(exc.__cause__, (ImportError, AttributeError))


def _failure(path: str, exc: BaseException, cap: Capacity) -> Failure:
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        limit = f" (each may use {format_size(cap.memory_limit)})" if cap.memory_limit else ""
        return Failure(path, f"each worker that tried it died: out of memory{limit}, or killed")
    return Failure(path, one_line(exc))
