"""``tracekit report``: the attention-cost report of a capture run."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tracekit.cli.common import check_choice, err
from tracekit.errors import CheckFailed


def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by 'tracekit capture'."),
    fmt: list[str] = typer.Option(["md"], "--format", "-f", help="md, html or json; repeat for several."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output file (default: RUN_DIR/report.<format>); '-' for stdout (json, md)."
    ),
    check: list[str] = typer.Option(
        [], "--check", help="Gate: METRIC@CONTEXT OP VALUE, e.g. 'tokens_per_s@4096>=40'. Exit 1 if violated."
    ),
    peak_bandwidth: float | None = typer.Option(
        None, "--peak-bandwidth", help="Device memory bandwidth in GB/s for the bound."
    ),
) -> None:
    """Explain how decode cost grows with context: per-context figures, fits, bounds, findings, plots.

    The answer comes first (and is printed here): decode ms/token at the smallest and largest
    context, what attention and the bandwidth bound explain of the difference, and whether the
    timer and the machine could be trusted, each figure with its 95% interval [lo–hi]. Per
    context: prefill time (synchronized, and the unsynchronized reading beside it), decode
    ms/token and tokens/s, attention ms/token and share, every other category, device idle share,
    profiler overhead, and the memory-bandwidth bound. Across contexts: least-squares fits of
    ms/token = a + b·context for total, attention and the rest, predictions at 2x and 4x the
    largest context, and where attention becomes half of a step.

    \b
    Examples:
      tracekit report traces/RUN --format html --format md
      tracekit report traces/RUN --format json --out - --check 'tokens_per_s@4096>=40'
    """
    from tracekit.manifest import report_file
    from tracekit.report.checks import evaluate, parse_check
    from tracekit.report.data import build_report
    from tracekit.report.renderers import render, write_report
    from tracekit.report.renderers.json import to_json

    for f in fmt:
        check_choice(f, ("md", "html", "json"), "--format")
    checks = [parse_check(c) for c in check]
    if out is not None and len(fmt) > 1:
        from tracekit.errors import UserError

        raise UserError("--out names one file; with several --format values leave it out (files go into RUN_DIR)")
    data = build_report(run_dir, peak_bandwidth=peak_bandwidth)
    for f in fmt:
        if out is not None and str(out) == "-":
            if f == "html":
                from tracekit.errors import UserError

                raise UserError("--out - works with --format json or md; HTML needs a file")
            sys.stdout.write(render(data, f, attachments=False).text)
            continue
        target = out if out is not None else Path(run_dir) / report_file(f)
        for p in write_report(data, f, target):
            if p.suffix in (".md", ".html", ".json"):
                print(p)
    if out is None or str(out) != "-":
        from tracekit.report.headline import headline

        err.print(headline(data).text)
    failures = evaluate(checks, to_json(data))
    for line in failures:
        err.print(f"tracekit: check failed: {line}")
    if failures:
        raise CheckFailed(f"{len(failures)} of {len(checks)} checks failed")
