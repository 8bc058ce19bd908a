"""``build_report``: a run folder's report data, from its manifest and traces. Renderers only format it."""

from __future__ import annotations

from pathlib import Path

from tracekit.advise.model import AdviceSet
from tracekit.errors import UserError
from tracekit.manifest import MANIFEST, read_manifest
from tracekit.report import bandwidth
from tracekit.report.figures import context_figures, growth
from tracekit.report.findings import findings_for
from tracekit.report.model import Finding, ReportData, ReportFacts


def build_report(run_dir: Path, *, peak_bandwidth: float | None = None, partial: bool = False) -> ReportData:
    run_dir = Path(run_dir)
    if run_dir.name == MANIFEST and run_dir.is_file():  # the manifest named instead of its folder
        run_dir = run_dir.parent
    m = read_manifest(run_dir)
    if not m.contexts:
        raise UserError(f"{run_dir}: the run holds no finished context yet; capture again")
    bw, bw_source = bandwidth.choose(m.device, peak_bandwidth)
    contexts, gaps = context_figures(run_dir, m, bw, partial=partial)
    facts = ReportFacts(
        run=str(run_dir),
        device=m.device,
        model=m.model,
        settings=m.settings,
        contexts=contexts,
        growth=growth(contexts),
        bandwidth_gbps=bw,
        bandwidth_source=bw_source,
        complete=m.complete,
        gaps=gaps,
    )
    findings = findings_for(facts)
    return ReportData.of(facts, findings, advice_for(facts, findings))


def advice_for(facts: ReportFacts, findings: list[Finding]) -> AdviceSet | None:
    """The report's "What would help": tracekit's default plan (no target, no other device)."""
    from tracekit.advise import Plan, advise
    from tracekit.advise.basis import from_report

    if not facts.ok_contexts():
        return None
    return advise(from_report(facts, findings), Plan(), run=facts.run)
