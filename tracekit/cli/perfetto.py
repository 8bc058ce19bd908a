"""``tracekit open`` and ``tracekit export``: look at traces in Perfetto, with tracekit's attribution."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import typer

from tracekit.cli.common import err
from tracekit.errors import UserError
from tracekit.perfetto import DEFAULT_PORT
from tracekit.sanitize import printable


def _trace_for(target: Path, context: int | None) -> tuple[Path, Path | None]:
    """(raw trace, enriched trace or None) for a trace file or a run folder."""
    if not target.is_dir():
        from tracekit.fsutil import regular_file

        regular_file(target, "trace file")
        if context is not None:
            raise UserError("--context applies to a run folder, not a single trace file")
        return target, None
    from tracekit.manifest import enriched_file, read_manifest, run_file

    m = read_manifest(target)
    ok = [c for c in m.contexts if c.status == "ok" and c.trace]
    if not ok:
        raise UserError(f"{target}: the run has no captured trace")
    if context is None:
        entry = max(ok, key=lambda c: c.context_tokens)
    else:
        match = [c for c in ok if c.context_tokens == context]
        if not match:
            raise UserError(f"{target}: no context {context} (has {', '.join(str(c.context_tokens) for c in ok)})")
        entry = match[0]
    raw = run_file(target, str(entry.trace))
    enriched = run_file(target, entry.enriched_trace or enriched_file(str(entry.trace)))
    return raw, enriched


def open_cmd(
    target: Path = typer.Argument(..., help="A trace file or a run folder."),
    context: int | None = typer.Option(None, help="Run folder: which context length (default: the largest)."),
    port: int = typer.Option(
        DEFAULT_PORT, min=1, max=65535, help=f"Port on 127.0.0.1. The Perfetto UI only fetches from {DEFAULT_PORT}."
    ),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL instead of opening a browser."),
    timeout: float | None = typer.Option(None, help="Stop serving after this many seconds."),
) -> None:
    """Open a trace in ui.perfetto.dev: serve it once from 127.0.0.1 (port 9001) and open the UI on it.

    A run folder opens the enriched trace of one context (phases, steps and attention share as
    tracks; each kernel carries tracekit.category). The server stops after the UI has fetched it.

    \b
    Examples:
      tracekit open traces/RUN
      tracekit open traces/RUN --context 1024
      tracekit open trace.json.gz --no-browser
    """
    import webbrowser

    from tracekit.perfetto.export import enrich_file
    from tracekit.perfetto.serve import TraceServer
    from tracekit.trace.options import ReadOptions

    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise UserError(f"--timeout {timeout:g}: give a number of seconds above 0")
    raw, enriched = _trace_for(target, context)
    path = raw
    if enriched is not None:
        if not enriched.exists():
            err.print(printable(f"writing the enriched trace {enriched} ..."))
            enrich_file(raw, enriched, read=ReadOptions.from_env())
        path = enriched
    server = TraceServer(path, port)
    url = server.url
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if port != DEFAULT_PORT:
        err.print(
            f"tracekit: note: ui.perfetto.dev only fetches from port {DEFAULT_PORT}; port {port} suits other clients"
        )
    if no_browser or headless or not webbrowser.open(url):
        print(url)
    err.print(
        printable(f"serving {path.name} on http://127.0.0.1:{server.port}/ until Perfetto fetches it (Ctrl-C stops)")
    )
    done = server.serve_until_fetched(timeout)
    err.print("trace fetched; server stopped" if done else "timed out; server stopped")


def export(
    target: Path = typer.Argument(..., help="A trace file or a run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Enriched trace to write (.json.gz or .json)."),
    context: int | None = typer.Option(None, help="Run folder: which context length (default: the largest)."),
    window: str | None = typer.Option(None, help="Keep only the span of this annotation (e.g. ProfilerStep#6)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Keep only the first N phases/steps."),
    force: bool = typer.Option(False, help="Overwrite --out if it exists."),
) -> None:
    """Write an enriched trace: the original events, each kernel tagged with tracekit.category and
    tracekit.rule, plus a 'tracekit' process with one slice per phase/step and counter tracks for
    context tokens, step time and attention share. Trim with --window / --max-steps.

    \b
    Examples:
      tracekit export traces/RUN --out enriched.json.gz --max-steps 8
      tracekit export trace.json.gz --out step6.json.gz --window ProfilerStep#6
    """
    from tracekit.fsutil import claim_output
    from tracekit.perfetto.export import enrich_file
    from tracekit.trace.options import ReadOptions

    raw, _ = _trace_for(target, context)
    claim_output(out, force=force)
    if out.exists() and os.path.samefile(out, raw):
        raise UserError(f"--out {out} is the trace being exported; choose another --out")
    st = enrich_file(raw, out, window=window, max_steps=max_steps, measure_growth=True, read=ReadOptions.from_env())
    err.print(
        printable(
            f"{raw} -> {out}: {st.events_in} events in, {st.events_out} out; added {st.added_events} tracekit events, "
            f"tagged {st.annotated_events} device events; {st.bytes_in:,} -> {st.bytes_out:,} bytes "
            f"({100 * st.growth:+.1f}% vs the input file, {100 * st.enrichment_growth:+.2f}% vs the same events re-encoded "
            "without enrichment)"
        )
    )
    print(printable(str(out)))
