"""``tracekit open`` and ``tracekit export``: look at traces in Perfetto, with tracekit's attribution."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from tracekit.cli.common import MAX_TOKENS, Number, err
from tracekit.errors import UserError
from tracekit.perfetto import DEFAULT_PORT
from tracekit.sanitize import printable


def _trace_for(target: Path, context: int | None) -> tuple[Path, Path | None]:
    """(raw trace, enriched trace or None) for a trace file or a run folder. The enriched trace
    is always the raw one's twin beside it (``enriched_file``): whatever a manifest's
    ``enriched_trace`` says, tracekit writes nowhere else."""
    if not target.is_dir():
        from tracekit.files import regular_file

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
    twin = enriched_file(str(entry.trace))
    if twin == str(entry.trace) or "/" in twin:
        raise UserError(f"{target}: the trace name {entry.trace!r} is not one a capture writes; refused")
    return raw, run_file(target, twin)


def export_memory() -> int | None:
    """TRACEKIT_EXPORT_MEMORY in bytes (the command line checked it), or None: what this process may use."""
    from tracekit.perfetto.export import EXPORT_MEMORY_ENV
    from tracekit.units import parse_size

    given = os.environ.get(EXPORT_MEMORY_ENV)
    return parse_size(given) if given else None


def _no_display() -> bool:
    return sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_cmd(
    target: Path = typer.Argument(..., help="A trace file or a run folder."),
    context: int | None = typer.Option(
        None, parser=Number("--context", 1, MAX_TOKENS), help="Run folder: which context length (default: the largest)."
    ),
    port: int = typer.Option(
        DEFAULT_PORT,
        parser=Number("--port", 1, 65535),
        help=f"Port on 127.0.0.1. The Perfetto UI only fetches from {DEFAULT_PORT}.",
    ),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL instead of opening a browser."),
    timeout: float | None = typer.Option(
        None,
        parser=Number("--timeout", 0.001, 1e6, integer=False),
        help="Stop serving after this many seconds (exit 2 if nothing fetched the trace by then).",
    ),
    once: bool = typer.Option(False, "--once", help="Stop after the first complete fetch (a reload then fails)."),
) -> None:
    """Open a trace in ui.perfetto.dev: serve it from 127.0.0.1 (port 9001) and open the UI on it.

    A run folder opens the enriched trace of one context (phases, steps and attention share as
    tracks; each kernel carries tracekit.category); any other trace is enriched the same way on
    the fly. The server keeps serving (a reload of the tab fetches again) until Ctrl-C, --timeout,
    or with --once the first complete fetch. The URL holds a random token, so no other web page
    can fetch the trace. Without a display, it prints the ssh -L line that forwards the port.

    \b
    Examples:
      tracekit open traces/RUN
      tracekit open traces/RUN --context 1024
      tracekit open trace.json.gz --no-browser --once
    """
    import webbrowser

    from tracekit.perfetto.export import enrich_data, enrich_file
    from tracekit.perfetto.serve import TraceServer
    from tracekit.trace.read import ReadOptions

    read = ReadOptions.from_env()
    raw, enriched = _trace_for(target, context)
    if enriched is not None:
        if not enriched.exists():
            err.print(printable(f"writing the enriched trace {enriched} ..."))
            enrich_file(raw, enriched, read=read)
        server = TraceServer(enriched, port)
    else:
        # A foreign trace: tracekit's tracks added in memory; the user's file stays as it is.
        data, _ = enrich_data(raw, read=read)
        name = raw.name.removesuffix(".gz").removesuffix(".json") + ".enriched.json.gz"
        server = TraceServer(raw, port, data=data, name=name)
    url = server.url
    headless = _no_display()
    if port != DEFAULT_PORT:
        err.print(
            f"tracekit: note: ui.perfetto.dev only fetches from port {DEFAULT_PORT}; port {port} suits other clients"
        )
    if no_browser or headless or not webbrowser.open(url):
        print(url, flush=True)
    if headless:
        import socket

        err.print(
            printable(
                f"no display here: on the machine with the browser, run "
                f"'ssh -L {server.port}:127.0.0.1:{server.port} {socket.gethostname()}', then open the URL above"
            )
        )
    until = "Perfetto fetches it" if once else "Ctrl-C (a reload fetches it again)"
    err.print(printable(f"serving {server.name} on http://127.0.0.1:{server.port}/ until {until}"))
    try:
        fetches = server.serve(timeout, once=once)
    except KeyboardInterrupt:
        if server.fetches == 0:
            raise
        err.print(f"server stopped after {server.fetches} fetch{'es' if server.fetches != 1 else ''}")
        return
    if fetches == 0:
        raise UserError(
            f"timed out after {timeout:g} s and nothing fetched the trace; server stopped "
            "(open the URL above in a browser, or forward the port with ssh -L)"
        )
    err.print(f"server stopped after {fetches} fetch{'es' if fetches != 1 else ''}")


def export(
    target: Path = typer.Argument(..., help="A trace file or a run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Enriched trace to write (.json.gz or .json)."),
    context: int | None = typer.Option(
        None, parser=Number("--context", 1, MAX_TOKENS), help="Run folder: which context length (default: the largest)."
    ),
    window: str | None = typer.Option(None, help="Keep only the span of this annotation (e.g. ProfilerStep#6)."),
    max_steps: int | None = typer.Option(
        None, "--max-steps", parser=Number("--max-steps", 1, 10**9), help="Keep only the first N phases/steps."
    ),
    force: bool = typer.Option(False, help="Replace --out even if tracekit did not write it."),
    strip_metadata: bool = typer.Option(
        False,
        "--strip-metadata",
        help="Leave out the trace's top-level metadata (machine, environment, command line) before sharing it.",
    ),
) -> None:
    """Write an enriched trace: the original events, each kernel tagged with tracekit.category and
    tracekit.rule, plus a 'tracekit' process with one slice per phase/step and counter tracks for
    context tokens, step time and attention share. Trim with --window / --max-steps; --out -
    writes the JSON to stdout. An earlier export to the same --out is replaced; any other file
    needs --force.

    \b
    Examples:
      tracekit export traces/RUN --out enriched.json.gz --max-steps 8
      tracekit export trace.json.gz --out step6.json.gz --window ProfilerStep#6
    """
    from tracekit.outputs import claim_output, record_outputs
    from tracekit.perfetto.export import enrich_data, enrich_file
    from tracekit.trace.read import ReadOptions

    read = ReadOptions.from_env()
    memory = export_memory()
    raw, _ = _trace_for(target, context)
    if str(out) == "-":
        if sys.stdout.isatty():
            raise UserError("--out - writes the trace to stdout, which is a terminal here; redirect it or name a file")
        data, st = enrich_data(
            raw, window=window, max_steps=max_steps, strip_metadata=strip_metadata, gz=False, read=read, memory=memory
        )
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        err.print(printable(f"{raw} -> stdout: {st.events_in} events in, {st.events_out} out; {st.bytes_out:,} bytes"))
        return
    claim_output(out, force=force)
    if out.exists() and os.path.samefile(out, raw):
        raise UserError(f"--out {out} is the trace being exported; choose another --out")
    st = enrich_file(
        raw,
        out,
        window=window,
        max_steps=max_steps,
        measure_growth=True,
        strip_metadata=strip_metadata,
        read=read,
        memory=memory,
    )
    record_outputs([out])
    err.print(
        printable(
            f"{raw} -> {out}: {st.events_in} events in, {st.events_out} out; added {st.added_events} tracekit events, "
            f"tagged {st.annotated_events} device events; {st.bytes_in:,} -> {st.bytes_out:,} bytes "
            f"({100 * st.growth:+.1f}% vs the input file, {100 * st.enrichment_growth:+.2f}% vs the same events re-encoded "
            "without enrichment)"
        )
    )
    print(printable(str(out)))
