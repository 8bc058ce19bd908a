"""``tracekit report``: the attention-cost report of a capture run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tracekit.cli import limit_flags as limit
from tracekit.cli.common import Number, check_choice, err
from tracekit.errors import CheckFailed, UserError
from tracekit.sanitize import printable


def report(
    inputs: list[str] = typer.Argument(
        ...,
        help="A run folder written by 'tracekit capture'; or trace files, folders or globs from any engine "
        "(the step report: attention against KV tokens, step by step).",
    ),
    fmt: list[str] = typer.Option(["md"], "--format", "-f", help="md, html or json; repeat for several."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output file (default: RUN_DIR/report.<format>); '-' for stdout (json, md)."
    ),
    check: list[str] = typer.Option(
        [], "--check", help="Gate: METRIC@CONTEXT OP VALUE, e.g. 'tokens_per_s@4096>=40'. Exit 1 if violated."
    ),
    device: Annotated[
        str | None,
        limit.device("The device to compare with (a name from 'tracekit devices'), instead of the captured one."),
    ] = None,
    peak_bandwidth: Annotated[
        float | None, limit.peak_bandwidth("Device memory bandwidth in GB/s for the bound.")
    ] = None,
    peak_flops: Annotated[
        float | None, limit.peak_flops("Device dense peak TFLOP/s (every dtype), for a device the table lacks.")
    ] = None,
    model_config: Annotated[
        Path | None,
        limit.model_config("A local Hugging Face config.json for the model facts (layers, heads, KV heads, ...)."),
    ] = None,
    partial: bool = typer.Option(
        False, help="Use the usable prefix of a truncated trace (with a warning) instead of leaving its figures out."
    ),
    force: bool = typer.Option(False, help="Replace --out (and its plots) even if tracekit did not write them."),
    at_kv: int | None = typer.Option(
        None,
        "--at-kv",
        parser=Number("--at-kv", 1, 10**12),
        help="Traces only: predict attention per decode step at this many KV tokens.",
    ),
) -> None:
    """Explain how decode cost grows with context: per-context figures, fits, bounds, findings, plots.

    The answer comes first (and is printed here), in three lines, each figure with its 95%
    interval [lo–hi]: what grew (decode ms/token from the smallest to the largest context, and
    each category's change per token), why (the bandwidth bound's share of the total growth), and
    whether to trust it (timer, machine load, noise). Per
    context: prefill time (synchronized, and the unsynchronized reading beside it), decode
    ms/token and tokens/s, attention ms/token and share, every other category, device idle share,
    profiler overhead, and the memory-bandwidth bound. Across contexts: least-squares fits of
    ms/token = a + b·context for total, attention and the rest (two contexts: exact, no R²), and,
    where the slope's interval excludes zero, tokens/s predicted at 2x the largest context and where
    attention becomes half of a step (never past 2x the measured range or the model's maximum).

    Given traces instead of a run folder (a file, several, a folder, a glob: vLLM, SGLang, HF
    generate(), tracekit's own), the report is built from their steps: attention µs per decode step
    against KV tokens (fit, 95% interval, prediction with --at-kv), what the traces cannot tell,
    the steps and the categories; written next to the first trace (steps-report.<format>) or to --out.

    \b
    Examples:
      tracekit report traces/RUN --format html --format md
      tracekit report vllm-trace.json.gz --format html
      tracekit report 'bench/**/*.json.gz' --at-kv 32768 --format md
      tracekit report traces/RUN --format json --out - --check 'tokens_per_s@4096>=40'
      tracekit report traces/RUN --device jetson-orin-agx --model-config Llama-3-8B/config.json
    """
    from tracekit.limits.flags import LimitFlags
    from tracekit.manifest import report_file
    from tracekit.outputs import claim_output
    from tracekit.report.checks import evaluate, parse_check, unknown_metrics
    from tracekit.report.data import build_report
    from tracekit.report.renderers import render, write_report
    from tracekit.report.renderers.jsonreport import to_json

    for f in fmt:
        check_choice(f, ("md", "html", "json"), "--format")
    if out is not None and len(fmt) > 1:
        raise UserError("--out names one file; with several --format values leave it out")
    flags = LimitFlags(device, peak_bandwidth, peak_flops, model_config)
    flags.check()  # a bad --device or config.json fails before any trace is read
    if not (len(inputs) == 1 and _run_folder_meant(inputs[0])):
        if check:
            raise UserError("--check needs a run folder (tracekit capture); these are traces")
        from tracekit.cli.report_traces import report_traces

        code = report_traces(inputs, fmt, out, force=force, partial=partial, at_kv=at_kv, flags=flags)
        if code:
            raise typer.Exit(code)
        return
    if at_kv is not None:
        raise UserError(
            "--at-kv predicts from engine traces' steps; a run's report predicts at 2x its largest context: leave it out"
        )
    run_dir = Path(inputs[0])
    checks = [parse_check(c) for c in check]
    if out is not None and len(fmt) > 1:
        raise UserError("--out names one file; with several --format values leave it out (files go into RUN_DIR)")
    to_stdout = out is not None and str(out) == "-"
    if to_stdout and "html" in fmt:
        raise UserError("--out - works with --format json or md; HTML needs a file")
    targets = {f: out if out is not None else Path(run_dir) / report_file(f) for f in fmt}
    if not to_stdout:
        for target in targets.values():
            claim_output(target, force=force)
    from tracekit.trace.read import ReadOptions

    read = ReadOptions.from_env()
    data = build_report(
        run_dir,
        peak_bandwidth=peak_bandwidth,
        partial=partial,
        read=read,
        device=device,
        peak_flops=peak_flops,
        model_config=model_config,
    )
    for finding in data.findings:
        if finding.kind == "trace-problem":
            err.print(f"tracekit: warning: {printable(finding.message)}")
    report = to_json(data)
    bad = unknown_metrics(checks, report)
    if bad:
        raise UserError(bad)
    for f in fmt:
        if to_stdout:
            sys.stdout.write(render(data, f).text)
            continue
        for p in write_report(data, f, targets[f], force=force):
            if p.suffix in (".md", ".html", ".json"):
                print(printable(str(p)))
    if not to_stdout:
        from tracekit.report.headline import headline

        for line in headline(data).lines:
            err.print(printable(line))
    failures = evaluate(checks, report)
    for line in failures:
        err.print(f"tracekit: check failed: {printable(line)}")
    if failures:
        raise CheckFailed(f"{len(failures)} of {len(checks)} checks failed")


def _run_folder_meant(arg: str) -> bool:
    """Whether ``arg`` asks for a run's report: a folder with a manifest entry of any kind (a broken
    one gets the run report's own error), or a path that does not exist and is no trace's name."""
    import os

    from tracekit.manifest import MANIFEST

    p = Path(arg)
    if p.is_dir():
        return os.path.lexists(p / MANIFEST)
    name = p.name.lower()
    return not p.exists() and not any(c in arg for c in "*?[") and not name.endswith((".json", ".json.gz"))
