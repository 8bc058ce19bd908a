"""What ``tracekit analyze`` prints once its traces are analyzed, and the exit code.

Results go to stdout (a table per trace, then, for several traces, the summary and the per-rank
table; or one JSON document; or CSV), everything else to stderr: each trace's warnings, one line
per failed trace, and a line saying so after Ctrl-C. Nothing reaches stdout when no trace could be
analyzed, so a single bad trace reads as it always did: one line, exit 2.
"""

from __future__ import annotations

import re
import textwrap

from tracekit.cli.common import err, out
from tracekit.fleet.merge import summarize
from tracekit.fleet.plan import Outcome
from tracekit.limits.flags import LimitFlags
from tracekit.render import analyze_rows, analyze_tables, fleet_tables
from tracekit.sanitize import printable

INTERRUPTED = 130


def emit(
    outcome: Outcome,
    total: int,
    *,
    fmt: str,
    by: str,
    explain: re.Pattern[str] | None,
    at_kv: int | None = None,
    wide: bool = False,
    top: int | None = None,
    ranks: bool = False,
    contexts: bool = False,
    flags: LimitFlags | None = None,
) -> int:
    """Print ``outcome`` (of ``total`` traces); return the exit code: 130 interrupted, 2 some failed.
    ``contexts``: the traces are the contexts of a tracekit run, and no sum over them is printed
    (a sum of different context lengths answers nothing)."""
    summary = summarize(
        outcome.partials, outcome.failed, interrupted=outcome.interrupted, cancelled=outcome.cancelled, ranks=ranks
    )
    view = None
    if flags is not None and outcome.partials:
        from tracekit.limits.steps import resolve

        facts = [p.facts for p in outcome.partials]
        limits = resolve(
            facts,
            device=flags.device,
            peak_bandwidth=flags.peak_bandwidth,
            peak_flops=flags.peak_flops,
            model_config=flags.model_config,
            paths=[p.result.path for p in outcome.partials],
        )
        view = analyze_rows.LimitView(limits, facts)
        shaped = any(f is not None and f.kernels for f in facts)
        for line in limits.notes_for(by, shaped):
            err.print(f"tracekit: note: {printable(line)}")
        for i, p in enumerate(outcome.partials):
            if p.steps is not None:  # the truth check: a figure above the device's peak
                for line in view.steps(i, p.result, p.steps)[1]:
                    err.print(f"tracekit: finding: {printable(p.result.path)}: {printable(line)}")
    steps = [p.steps for p in outcome.partials] if by == "step" else None
    grown = None
    if steps is not None:
        from tracekit.analysis.growth import growth
        from tracekit.analysis.steps import concat

        grown = growth(concat([t for t in steps if t is not None]), at_kv)
    for p in outcome.partials:
        for w in p.result.warnings:
            err.print(f"tracekit: warning: {printable(w)}")
        for note in p.notes:
            err.print(f"tracekit: {printable(note)}")
    results = [p.result for p in outcome.partials]
    if explain is not None:
        for r in results:
            shown = analyze_tables.explain(r, explain)
            if shown is None:
                err.print(printable(f"tracekit: no kernel in {r.path} matches {explain.pattern!r}"))
            else:
                out.print(shown)
    elif fmt == "json" and (results or outcome.interrupted):
        # After Ctrl-C the document still comes, with "interrupted" in its summary, even when no
        # trace had finished: a script reading stdout learns why it holds no traces.
        print(analyze_rows.to_json(results, summary.to_json(), by, steps, grown, view, top=top))
    elif results and fmt == "csv":
        print(analyze_rows.to_csv(results, by, steps, view, top=top), end="")
        if grown is not None:
            for line in analyze_tables.growth_lines(grown):
                err.print(f"tracekit: {printable(line)}")
    elif results:
        for i, r in enumerate(results):
            out.print(
                analyze_tables.table(r, by, steps[i] if steps else None, view, i, wide=wide, top=top, width=out.rich.width)
            )
            if r.extra.get("hta"):
                out.print_json(data=r.extra["hta"])
        if total > 1 and not contexts:
            out.print(fleet_tables.summary_table(summary))
        if summary.ranks is not None:
            out.print(fleet_tables.rank_table(summary.ranks))
        if grown is not None:
            for line in analyze_tables.growth_lines(grown):
                out.print(textwrap.fill(printable(line), out.rich.width, subsequent_indent="  "))
    if summary.ranks_refused:
        err.print(f"tracekit: {summary.ranks_refused}")
    for f in outcome.failed:
        err.print(printable(f"tracekit: error: {f.path}: {' '.join(str(f.error).split())}"))
    if outcome.interrupted:
        err.print(f"tracekit: interrupted: {len(results) + len(outcome.failed)} of {total} traces done")
        return INTERRUPTED
    return 2 if outcome.failed else 0
