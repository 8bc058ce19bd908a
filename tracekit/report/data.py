"""``build_report``: a run folder's report data, from its manifest and traces. Renderers only format it."""

from __future__ import annotations

from pathlib import Path

from tracekit.errors import UserError
from tracekit.limits.model import ModelShape, from_config, from_manifest
from tracekit.limits.roofline import Roof, choose_roof
from tracekit.manifest import MANIFEST, Manifest, read_manifest
from tracekit.report.advice import advice_for
from tracekit.report.findings import findings_for
from tracekit.report.model import ReportData, ReportFacts
from tracekit.report.run_analysis import context_figures, growth
from tracekit.trace.read import ReadOptions


def run_roof(
    m: Manifest, *, device: str | None = None, peak_bandwidth: float | None = None, peak_flops: float | None = None
) -> tuple[Roof | None, str]:
    """The roof a run is compared with: flags first, then the device table by the captured device's
    name, then (on a CPU) the bandwidth capture measured."""
    return choose_roof(
        trace_device=m.device.name,
        memory_bytes=m.device.memory_bytes,
        device=device,
        peak_bandwidth_gbps=peak_bandwidth,
        peak_tflops=peak_flops,
        measured_gbps=m.device.measured_bandwidth_gbps if (m.device.measured_bandwidth_gbps or 0) > 0 else None,
    )


def build_report(
    run_dir: Path,
    *,
    peak_bandwidth: float | None = None,
    partial: bool = False,
    device: str | None = None,
    peak_flops: float | None = None,
    model_config: Path | None = None,
    read: ReadOptions | None = None,
) -> ReportData:
    run_dir = Path(run_dir)
    if run_dir.name == MANIFEST and run_dir.is_file():  # the manifest named instead of its folder
        run_dir = run_dir.parent
    m = read_manifest(run_dir)
    if not m.contexts:
        raise UserError(f"{run_dir}: the run holds no finished context yet; capture again")
    roof, roof_source = run_roof(m, device=device, peak_bandwidth=peak_bandwidth, peak_flops=peak_flops)
    bw = None if roof is None else roof.bandwidth_tb_s * 1000.0
    shape: ModelShape | None = from_config(model_config) if model_config is not None else from_manifest(m.model)
    contexts, gaps = context_figures(run_dir, m, bw, partial=partial, read=read, shape=shape, roof=roof)
    facts = ReportFacts(
        run=str(run_dir),
        device=m.device,
        model=m.model,
        settings=m.settings,
        contexts=contexts,
        growth=growth(contexts, m.model.max_context),
        bandwidth_gbps=bw,
        bandwidth_source=roof_source if roof is not None else "unknown (pass --peak-bandwidth GBPS or --device NAME)",
        complete=m.complete,
        gaps=gaps,
        roof=roof,
        roof_source=roof_source,
        shape=shape,
    )
    findings = findings_for(facts)
    return ReportData(facts, findings, advice_for(facts, findings))
