"""The capture pipeline: capture a sweep, then write each context's Perfetto-enriched twin.

This is the step above both capture (which only runs torch and writes raw traces) and the
Perfetto renderer, so neither depends on the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tracekit.manifest import ContextEntry, enriched_file

if TYPE_CHECKING:
    from tracekit.capture.backends.base import Backend, CaptureOptions
    from tracekit.capture.sweep import ProgressFn, SweepOptions


def enrich_context(run_dir: Path, entry: ContextEntry) -> None:
    """Write the enriched twin of one captured context and name it in its manifest entry."""
    from tracekit.perfetto.export import enrich_file

    if entry.trace is None:
        return
    name = enriched_file(entry.trace)
    try:
        enrich_file(run_dir / entry.trace, run_dir / name)
    except Exception as exc:  # noqa: BLE001 - enrichment is a convenience; the raw trace stands
        entry.error = f"enrichment failed: {exc}"
        return
    entry.enriched_trace = name


def capture_run(
    opts: CaptureOptions,
    sweep: SweepOptions,
    progress: ProgressFn | None = None,
    *,
    enrich: bool = True,
    backend: Backend | None = None,
) -> Path:
    """Capture a sweep (``tracekit capture``) and return the run folder; with ``enrich``, each
    context's enriched twin is written as soon as the context is on disk."""
    from tracekit.capture.sweep import run_capture

    return run_capture(opts, sweep, progress, backend=backend, after_context=enrich_context if enrich else None)
