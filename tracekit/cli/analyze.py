"""``tracekit analyze``: attribute device time in any torch.profiler trace, or in many at once."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import typer

from tracekit.cli import limit_flags as limit
from tracekit.cli.common import MAX_WORKERS, Number, check_choice, err, out
from tracekit.errors import UserError
from tracekit.limits.flags import LimitFlags


def analyze(
    traces: list[str] = typer.Argument(
        ...,
        help="Trace files (*.json or *.json.gz) from any torch.profiler source, directories (searched recursively) or globs.",
    ),
    window: str | None = typer.Option(
        None,
        help="Restrict to the span of this annotation: a name (ProfilerStep#6) or a pattern (ProfilerStep#*); "
        "several matches: the earliest, and a line says which.",
    ),
    window_all: bool = typer.Option(False, "--window-all", help="Sum every window --window matches."),
    list_windows: bool = typer.Option(
        False, "--list-windows", help="List each trace's annotations (window names) with their counts, and stop."
    ),
    phase: str | None = typer.Option(
        None,
        help="prefill, decode or all: only that phase's work (default: decode for a tracekit run folder, else all).",
    ),
    ranks: bool = typer.Option(
        False,
        "--ranks",
        help="The traces are ranks of one job: read ranks from file names too (rank-3), not only from the "
        "traces' distributedInfo.",
    ),
    by: str = typer.Option("category", help="Group by: category, phase, step or kernel."),
    wide: bool = typer.Option(False, "--wide", help="Full kernel names in tables (default: their short identity)."),
    top: int | None = typer.Option(
        None, "--top", parser=Number("--top", 1, 10**6), help="Only the N longest kernels (--by kernel)."
    ),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    explain: str | None = typer.Option(None, help="Show which rule classified each kernel matching this regex."),
    partial: bool = typer.Option(False, help="Analyze the usable prefix of a truncated trace (with a warning)."),
    hta: bool = typer.Option(False, help="Add HolisticTraceAnalysis's temporal and idle breakdowns (needs [hta])."),
    workers: int | None = typer.Option(
        None,
        parser=Number("--workers", 1, MAX_WORKERS),
        help="Processes of the embedded Dask cluster (default: one per usable core, at most one per trace, "
        "or this process alone when the traces hold under 256 MB of JSON); 1 analyzes in this process, without Dask.",
    ),
    scheduler: str | None = typer.Option(
        None,
        help="Run on an existing Dask cluster: its scheduler's address (tcp://host:8786); "
        "default $DASK_SCHEDULER_ADDRESS when there are several traces (and no --workers or --memory-limit). "
        "Workers need tracekit and must see the same paths.",
    ),
    at_kv: int | None = typer.Option(
        None,
        "--at-kv",
        parser=Number("--at-kv", 1, 10**12),
        help="With --by step: predict attention per decode step at this many KV tokens (from the fit).",
    ),
    memory_limit: str | None = typer.Option(
        None, help="Memory per worker of the embedded cluster (e.g. 4GB; default: an equal share of this machine's)."
    ),
    device: Annotated[
        str | None,
        limit.device("With --by step/kernel: the device whose peaks to compare with (see 'tracekit devices')."),
    ] = None,
    peak_bandwidth: Annotated[
        float | None,
        limit.peak_bandwidth("With --by step/kernel: device memory bandwidth in GB/s (a device the table lacks)."),
    ] = None,
    peak_flops: Annotated[
        float | None, limit.peak_flops("With --by step/kernel: device dense peak TFLOP/s, every dtype.")
    ] = None,
    model_config: Annotated[
        Path | None, limit.model_config("With --by step/kernel: a local Hugging Face config.json for the model facts.")
    ] = None,
) -> None:
    """Attribute device time to attention and everything else, per window, phase and step.

    Categories: attention, kv_cache, gemm, convolution, norm, rope, activation, elementwise, sampling, moe_routing,
    memcpy, memset, communication, other. Each kernel is classified by the first matching rule of one
    ordered table (kernel name, launching op, enclosing scopes); --explain shows which.

    Several traces run as Dask tasks (a local cluster by default, or --scheduler) and get a summary:
    categories over all traces and, when the traces are ranks of one job (their own
    distributedInfo.rank, or rank-N in the file name with --ranks), a per-rank table with the
    slowest rank and the skew. A tracekit run folder is read over its decode steps (--phase).
    A trace that fails is listed and the others finish (exit 2); Ctrl-C prints what finished
    (exit 130).

    \b
    Examples:
      tracekit analyze trace.json.gz --window ProfilerStep#6
      tracekit analyze trace.json.gz --window 'ProfilerStep#*' --window-all
      tracekit analyze trace.json.gz --by kernel --top 10
      tracekit analyze run/context-004096.pt.trace.json.gz --by step --format json
      tracekit analyze trace.json.gz --explain 'flash|attn'
      tracekit analyze traces/job-42/ --window ProfilerStep#6
      tracekit analyze 'sweeps/**/*.json.gz' --scheduler tcp://head:8786 --format json
      tracekit analyze sglang-decode.json.gz --by step --model-config Qwen3-8B/config.json
      tracekit analyze h100-trace.json.gz --by kernel --device h100-sxm
    """
    _one_blas_thread()
    from tracekit.analysis.analyze import PHASES
    from tracekit.cli.analyze_print import emit
    from tracekit.cli.progress import progress
    from tracekit.fleet.inputs import expand
    from tracekit.fleet.plan import Plan
    from tracekit.fleet.run import default_workers
    from tracekit.fleet.run import run as run_tasks
    from tracekit.fleet.task import TaskOptions
    from tracekit.render import analyze_rows
    from tracekit.trace.read import ReadOptions

    check_choice(by, analyze_rows.GROUPINGS, "--by")
    check_choice(fmt, analyze_rows.FORMATS, "--format")
    if phase is not None:
        check_choice(phase, PHASES, "--phase")
    # A flag that shapes one grouping's output is an error with another, not silently dropped.
    if top is not None and by != "kernel":
        raise UserError(f"--top {top} keeps the longest kernels of --by kernel: add --by kernel or leave --top out")
    if at_kv is not None and by != "step":
        raise UserError(f"--at-kv {at_kv} predicts from the decode steps of --by step: add --by step or leave it out")
    if window_all and window is None:
        raise UserError("--window-all sums the windows --window matches: give --window PATTERN too")
    if phase not in (None, "all") and window is not None:
        raise UserError("give --window (an annotation's span) or --phase (a phase's work), not both")
    pattern = None
    if explain is not None:
        try:
            pattern = re.compile(explain)
        except re.error as exc:
            raise UserError(f"--explain {explain!r} is not a valid regular expression ({exc})") from None
    if scheduler is not None and workers is not None:
        raise UserError("give --workers (a cluster on this machine) or --scheduler (an existing one), not both")
    if memory_limit is not None:
        memory_limit = str(check_memory_limit(memory_limit))
    paths = expand(traces)
    if workers is not None:
        workers = _capped(workers, len(paths))
    if list_windows:
        _list_windows(paths, partial)
        return
    run = window is None and phase is None and _in_run_folders(paths)
    if run:
        phase = "decode"
        err.print("tracekit: a tracekit run: decode steps only (--phase all for every phase, --phase prefill)")
    # An explicit --workers or --memory-limit (both about a cluster tracekit starts) wins over the
    # environment; --workers 1 never touches Dask, and neither does a single trace unless
    # --scheduler says so (an address left in the environment for other tools would cost a
    # connection and need tracekit on the cluster, for one file).
    address = scheduler
    if address is None and workers is None and memory_limit is None and len(paths) > 1:
        address = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if address is not None and memory_limit is not None:
        raise UserError(
            "--memory-limit sizes the workers of the cluster tracekit starts; an existing cluster's "
            "workers have their own (dask worker --memory-limit): leave out --memory-limit or the scheduler"
        )
    plan = Plan(workers or default_workers(paths), address, memory_limit)
    kernels: Literal["top", "all", "match"] = "match" if pattern is not None else "all" if by == "kernel" else "top"
    limits = by in ("step", "kernel")
    flags = LimitFlags(device, peak_bandwidth, peak_flops, model_config)
    if limits:
        flags.check()  # a bad --device or config.json fails before any trace is read
    elif flags.given():
        raise UserError("--device, --peak-bandwidth, --peak-flops and --model-config go with --by step or --by kernel")
    options = TaskOptions(
        window=window,
        partial=partial,
        hta=hta,
        kernels=kernels,
        explain=explain,
        read=ReadOptions.from_env(),
        steps=by == "step",
        window_all=window_all,
        phase=phase,
        limits=limits,
    )
    with progress(len(paths)) as listener:
        outcome = run_tasks(paths, options, plan, listener)
    code = emit(
        outcome,
        len(paths),
        fmt=fmt,
        by=by,
        explain=pattern,
        at_kv=at_kv,
        wide=wide,
        top=top,
        ranks=ranks,
        contexts=run,
        flags=flags if limits else None,
    )
    if code:
        raise typer.Exit(code)


def check_memory_limit(text: str) -> int:
    """--memory-limit in bytes, checked whether or not a cluster is started (from 64 MB to 1 PB)."""
    from tracekit.units import parse_size

    try:
        size = parse_size(text) if len(text) <= 32 else -1
    except (ValueError, OverflowError):
        size = -1
    if not (64 << 20) <= size <= (1 << 50):
        raise UserError(f"--memory-limit {text[:32]!r}: give a size per worker from 64MB to 1PB (example: 4GB)")
    return size


def _capped(workers: int, traces: int) -> int:
    """--workers at most one per trace and one per usable core (more would only wait), with a note."""
    from tracekit.cli.common import err
    from tracekit.cores import usable_cores

    cap = max(1, min(traces, usable_cores()))
    if workers > cap:
        err.print(
            f"tracekit: note: --workers {workers} lowered to {cap} "
            f"({traces} trace{'s' if traces != 1 else ''}, {usable_cores()} usable cores)"
        )
    return min(workers, cap)


def _in_run_folders(paths: list[str]) -> bool:
    """Whether every trace is a context of a tracekit run (a manifest beside it)."""
    from tracekit.manifest import MANIFEST

    return bool(paths) and all((Path(p).parent / MANIFEST).is_file() for p in paths)


def _list_windows(paths: list[str], partial: bool) -> None:
    """Each trace's annotation names, in natural order, with how often each occurs."""
    from tracekit.analysis.window import annotation_counts
    from tracekit.sanitize import printable
    from tracekit.trace.read import load_trace

    for p in paths:
        counts = annotation_counts(load_trace(p, partial=partial))
        out.print(printable(f"{p}: {len(counts)} window names"))
        for name, n in counts.items():
            out.print(printable(f"  {name}" + (f"  (x{n})" if n > 1 else "")))


def _one_blas_thread() -> None:
    """numpy's OpenBLAS starts a thread per core when numpy is imported, which a small trace's
    ``analyze`` waits for (docs/performance.md, Start-up). Analysis does no linear algebra, so one
    thread, unless the user chose otherwise (workers inherit the setting)."""
    import sys

    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
