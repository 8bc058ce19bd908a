"""``tracekit.advise``: what would help, with numbers, as a Python call (``tracekit advise`` runs it).

The target is a run folder, engine traces (their decode steps), or nothing: a projection from
model facts (``preset`` or ``model_config``) and speeds measured elsewhere (``measured``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Any

from tracekit.advice import AdviceSet, Plan
from tracekit.api.table import Kind, Table
from tracekit.errors import UserError
from tracekit.limits.devices import Device
from tracekit.sanitize import printable

MAX_TOKENS = 10**9  # far beyond any context a model holds; keeps the arithmetic finite

ADVICE_KINDS: dict[str, Kind] = {
    "rank": "int",
    "kind": "category",
    "severity": "category",
    "claim": "str",
    "predicted_gain": "float",
    "predicted_gain_ci95_lo": "float",
    "predicted_gain_ci95_hi": "float",
    "gain_basis": "str",
    "rests_on": "str",
    "assumptions": "str",
}
PROJECTION_KINDS: dict[str, Kind] = {
    "context": "int",
    "device": "category",
    "variant": "category",
    "weight_bytes": "float",
    "kv_bytes": "float",
    "peak_bandwidth_gb_s": "float",
    "bound_ms_per_token": "float",
    "ceiling_tokens_per_s": "float",
    "measured_tokens_per_s": "float",
    "predicted_tokens_per_s": "float",
    "predicted_tokens_per_s_ci95_lo": "float",
    "predicted_tokens_per_s_ci95_hi": "float",
    "extrapolated": "bool",
}


@dataclass
class Advice:
    """The advice (``advice``: measurement checks first, then by predicted gain) and the bytes a
    decode step reads at each context on each device (``projection``); ``to_json()`` is
    ``tracekit advise --format json`` (``tracekit.advice/1``)."""

    result: AdviceSet

    @property
    def advice(self) -> Table:
        rows = []
        for i, a in enumerate(self.result.advice, 1):
            lo, hi = a.predicted_gain_ci95 or (None, None)
            rows.append(
                {
                    "rank": i,
                    "kind": a.kind,
                    "severity": a.severity,
                    "claim": a.claim,
                    "predicted_gain": a.predicted_gain,
                    "predicted_gain_ci95_lo": lo,
                    "predicted_gain_ci95_hi": hi,
                    "gain_basis": a.gain_basis,
                    "rests_on": "; ".join(a.rests_on),
                    "assumptions": "; ".join(a.assumptions),
                }
            )
        return Table.from_rows("advice", ADVICE_KINDS, rows)

    @property
    def projection(self) -> Table:
        rows = []
        for p in self.result.projection:
            lo, hi = p.predicted_tokens_per_s_ci95 or (None, None)
            rows.append(
                {
                    "context": p.context,
                    "device": p.device,
                    "variant": p.variant,
                    "weight_bytes": p.weight_bytes,
                    "kv_bytes": p.kv_bytes,
                    "peak_bandwidth_gb_s": p.bandwidth_gbps,
                    "bound_ms_per_token": p.bound_ms,
                    "ceiling_tokens_per_s": p.ceiling_tokens_per_s,
                    "measured_tokens_per_s": p.measured_tokens_per_s,
                    "predicted_tokens_per_s": p.predicted_tokens_per_s,
                    "predicted_tokens_per_s_ci95_lo": lo,
                    "predicted_tokens_per_s_ci95_hi": hi,
                    "extrapolated": p.extrapolated,
                }
            )
        return Table.from_rows("projection", PROJECTION_KINDS, rows)

    @property
    def bound_explains(self) -> float | None:
        """With measured speeds: the share of the slowdown the growth of bytes read explains."""
        return self.result.bound_explains

    def to_json(self) -> dict[str, Any]:
        from tracekit.advice.document import to_json

        return to_json(self.result)

    def _repr_html_(self) -> str:
        items = "".join(
            f"<li>[{html.escape(a.kind)}] {html.escape(printable(a.claim))}</li>" for a in self.result.advice
        )
        return f"<p><b>What would help</b> ({html.escape(printable(self.result.source))})</p><ol>{items}</ol>"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: float | None, flag: str, what: str) -> None:
    if value is not None and not (_number(value) and value > 0):
        raise UserError(f"{flag} {value!r}: give {what}, a positive number")


def _bits(value: float | None, flag: str) -> None:
    if value is not None and not (_number(value) and 1 <= value <= 32):
        raise UserError(f"{flag} {value!r}: give bits per value between 1 and 32 (e.g. {flag} 8)")


def advise(
    target: str | PathLike[str] | None = None,
    *,
    target_tps: float | None = None,
    target_itl: float | None = None,
    on: str | None = None,
    context: Sequence[int] = (),
    generate: int | None = None,
    prompt: int | None = None,
    keep: int | None = None,
    every: int | None = None,
    kv_bits: float | None = None,
    weight_bits: float | None = None,
    preset: str | None = None,
    model_config: str | PathLike[str] | None = None,
    measured: Sequence[tuple[int, float]] = (),
    compare: Sequence[str | PathLike[str]] = (),
    peak_bandwidth: float | None = None,
    device: str | None = None,
) -> Advice:
    """What would help (docs/advise.md). ``target``: a run folder, engine traces (a file, folder or
    glob), or None for a projection from ``preset`` / ``model_config`` at ``context`` lengths with
    ``measured`` (context, tokens/s) pairs. ``on`` projects to a device of the table; ``compare``
    runs of the same model with another attention; ``device`` / ``peak_bandwidth`` say what a run
    or the traces ran on. Arguments are the command's flags (``--target-tps`` is ``target_tps``)."""
    from tracekit.advice import advise as run_advice
    from tracekit.limits.devices import find_device
    from tracekit.report.advice import from_report
    from tracekit.report.data import build_report

    _positive(target_tps, "--target-tps", "tokens per second")
    _positive(target_itl, "--target-itl", "milliseconds per token")
    _positive(peak_bandwidth, "--peak-bandwidth", "the device's bandwidth in GB/s")
    if target_tps is not None and target_itl is not None:
        raise UserError("--target-tps and --target-itl say the same thing; give one")
    for value, flag, least in (
        (generate, "--generate", 1),
        (every, "--every", 1),
        (prompt, "--prompt", 0),
        (keep, "--keep", 0),
    ):
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and not (whole and least <= value <= MAX_TOKENS):
            raise UserError(f"{flag} {value!r}: give a whole number of tokens from {least} to {MAX_TOKENS:,}")
    _bits(kv_bits, "--kv-bits")
    _bits(weight_bits, "--weight-bits")
    if keep is not None and every is not None and prompt is not None and keep >= prompt + every:
        raise UserError(
            f"--keep {keep}: a reset keeps fewer tokens than the context holds when it happens "
            f"(--prompt {prompt} + --every {every}); give a smaller --keep"
        )
    if isinstance(context, str) or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in context):
        raise UserError(f"--context {context!r}: give whole numbers of tokens, 1 or more")
    for ctx, tps in measured:
        if isinstance(ctx, bool) or not isinstance(ctx, int) or ctx < 0 or not (_number(tps) and tps > 0):
            raise UserError(f"--measured {ctx}:{tps}: give CONTEXT:TOKENS_PER_S, a whole context and a positive speed")
    on_device = find_device(on, flag="--on") if on is not None else None
    config = Path(model_config) if model_config is not None else None
    plan = Plan(target_tps, target_itl, on, tuple(context), generate, prompt, keep, every, kv_bits, weight_bits)
    if target is not None and not _is_run(Path(target)):
        for flag, given in (("--preset", preset), ("--measured", measured or None), ("--compare", compare or None)):
            if given is not None:
                raise UserError(f"{flag} does not apply to traces ({target}); leave it out")
        return Advice(_traces(Path(target), config, device, peak_bandwidth, plan, on_device))
    if target is not None:
        for flag, given in (("--preset", preset), ("--measured", measured or None)):
            if given is not None:
                raise UserError(f"{flag} describes a model without a run; with a run ({target}) leave it out")
        data = build_report(Path(target), peak_bandwidth=peak_bandwidth, device=device, model_config=config)
        others = tuple(from_report(o.facts, o.findings) for o in (build_report(Path(p)) for p in compare))
        basis = from_report(data.facts, data.findings)
        return Advice(run_advice(basis, plan, on=on_device, compare=others, run=str(target)))
    if compare:
        raise UserError("--compare compares runs: give a run folder first (tracekit advise RUN --compare OTHER)")
    for flag, said in (("--peak-bandwidth", peak_bandwidth), ("--device", device)):
        if said is not None:
            raise UserError(f"{flag} applies to a run or traces; without one, name the device with --on")
    if (preset is None) == (config is None):
        raise UserError(
            "give a run folder, or the model with --preset NAME or --model-config PATH (one of them), "
            "e.g. tracekit advise --preset mistral-7b --on jetson-orin-agx --context 16,1441"
        )
    from tracekit.advice.basis import from_facts
    from tracekit.limits.model import from_config, from_preset, with_sources

    shape = from_preset(preset) if preset is not None else from_config(config)  # type: ignore[arg-type]
    if weight_bits is not None:
        shape = with_sources(shape, weight_bits=(weight_bits, "--weight-bits"))
    if kv_bits is not None:
        shape = with_sources(shape, kv_bits=(kv_bits, "--kv-bits"))
    if not measured and not context:
        raise UserError("give --context (contexts to project at) or --measured (speeds you measured)")
    what = f"preset {preset}" if preset is not None else str(config)
    # Without a run the bits describe the model; the precision advice halves from there.
    plan = replace(plan, on=None, kv_bits=None, weight_bits=None)
    return Advice(run_advice(from_facts(shape, on_device, list(measured), what), plan, run=""))


def _is_run(target: Path) -> bool:
    from tracekit.manifest import MANIFEST

    return (target / MANIFEST).exists() or (target.name == MANIFEST and target.is_file())


def _traces(
    target: Path,
    model_config: Path | None,
    device_name: str | None,
    peak_bandwidth: float | None,
    plan: Plan,
    on: Device | None,
) -> AdviceSet:
    """Advice on engine traces: the decode steps' KV tokens and device-busy times, against the
    model facts and roof the traces report resolves (flags first, then what the traces name)."""
    from tracekit.advice import advise_steps
    from tracekit.analysis.steps import concat
    from tracekit.fleet.inputs import expand
    from tracekit.fleet.plan import Plan as FleetPlan
    from tracekit.fleet.run import run
    from tracekit.fleet.task import TaskOptions
    from tracekit.limits.flags import LimitFlags
    from tracekit.limits.steps import resolve

    LimitFlags(device_name, peak_bandwidth, None, model_config).check()
    paths = expand([str(target)])
    outcome = run(paths, TaskOptions(steps=True, limits=True), FleetPlan(1, None, None))
    if outcome.failed:
        f = outcome.failed[0]
        raise UserError(f"{f.path}: {' '.join(str(f.error).split())}")
    steps = concat([p.steps for p in outcome.partials if p.steps is not None])
    limits = resolve(
        [p.facts for p in outcome.partials],
        device=device_name,
        peak_bandwidth=peak_bandwidth,
        model_config=model_config,
        paths=[p.result.path for p in outcome.partials],
    )
    what = f"{len(paths)} trace{'s' if len(paths) > 1 else ''} ({target})"
    result = advise_steps(
        steps, plan, shape=limits.shape, roof=limits.roof, roof_source=limits.roof_source, on=on, what=what,
        run=str(target),
    )  # fmt: skip
    if not result.advice:
        raise UserError(
            f"{target}: {result.notes[0] if result.notes else 'nothing to advise on'}; see 'tracekit analyze {target} --by step'"
        )
    return result
