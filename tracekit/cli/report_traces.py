"""``tracekit report`` on traces (files, folders, globs) rather than a capture run: the step report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tracekit.cli.common import err
from tracekit.errors import UserError
from tracekit.limits.flags import LimitFlags
from tracekit.manifest import TRACES_REPORT_STEM
from tracekit.sanitize import finite, printable


def report_traces(
    inputs: list[str],
    fmt: list[str],
    out: Path | None,
    *,
    force: bool,
    partial: bool,
    at_kv: int | None,
    flags: LimitFlags | None = None,
) -> int:
    """Analyze ``inputs`` step by step and write the report; return the exit code (2: some trace failed)."""
    from tracekit.cli.progress import progress
    from tracekit.files import write_files_atomic
    from tracekit.fleet.inputs import expand
    from tracekit.fleet.plan import Plan
    from tracekit.fleet.run import default_workers, run
    from tracekit.fleet.task import TaskOptions
    from tracekit.outputs import claim_output, record_outputs
    from tracekit.report import traces, traces_sections
    from tracekit.trace.read import ReadOptions

    try:
        paths = expand(inputs)
    except UserError:
        if len(inputs) == 1 and Path(inputs[0]).is_dir():
            raise UserError(
                f"{inputs[0]}: no manifest.json (not a run folder of 'tracekit capture') and no *.json or "
                "*.json.gz trace in it or below it"
            ) from None
        raise
    if not paths:
        raise UserError(f"{' '.join(inputs)}: no *.json or *.json.gz trace there")
    to_stdout = out is not None and str(out) == "-"
    if to_stdout and "html" in fmt:
        raise UserError("--out - works with --format json or md; HTML needs a file")
    folder = Path(paths[0]).parent
    targets = {f: out if out is not None else folder / f"{TRACES_REPORT_STEM}.{f}" for f in fmt}
    if not to_stdout:
        for target in targets.values():
            claim_output(target, force=force)
    with progress(len(paths)) as listener:
        options = TaskOptions(partial=partial, steps=True, limits=True, read=ReadOptions.from_env())
        outcome = run(paths, options, Plan(default_workers(paths)), listener)
    for failure in outcome.failed:
        err.print(printable(f"tracekit: error: {failure.path}: {' '.join(str(failure.error).split())}"))
    if not outcome.partials:
        raise UserError("no trace could be analyzed; nothing to report")
    from tracekit.limits.steps import resolve

    given = flags or LimitFlags()
    limits = resolve(
        [p.facts for p in outcome.partials],
        device=given.device,
        peak_bandwidth=given.peak_bandwidth,
        peak_flops=given.peak_flops,
        model_config=given.model_config,
        paths=[p.result.path for p in outcome.partials],
    )
    data = traces.build(outcome.partials, outcome.failed, at_kv, limits)
    for f in fmt:
        target = targets[f]
        if f == "json":
            text = json.dumps(finite(traces.to_json(data)), indent=2, allow_nan=False) + "\n"
            files = {target: text.encode("utf-8")}
        elif f == "html":
            files = {target: traces_sections.to_html(data).encode("utf-8")}
        else:
            md, plots = traces_sections.to_markdown(data, stem=target.stem, attachments=not to_stdout)
            files = {target.parent / rel: content for rel, content in plots.items()}
            files[target] = md.encode("utf-8")
        if to_stdout:
            sys.stdout.write(files[target].decode("utf-8"))
            continue
        beside = [str(p.relative_to(target.parent)) for p in files if p != target]
        claim_output(target, force=force, attachments=beside)
        write_files_atomic(files)
        record_outputs(files)
        print(printable(str(target)))
    if not to_stdout:
        err.print(printable(traces.headline(data)))
    return 2 if outcome.failed else 0
