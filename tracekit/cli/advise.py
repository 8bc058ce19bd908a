"""``tracekit advise``: what would help, with numbers (context budget, another device, context
resets, cache and weight precision, attention implementation), measurement checks first."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tracekit.cli.common import check_choice, parse_int_list
from tracekit.errors import UserError
from tracekit.sanitize import printable

if TYPE_CHECKING:
    from tracekit.advise import AdviceSet, Plan
    from tracekit.limits.devices import Device


MAX_TOKENS = 10**9  # far beyond any context a model holds; keeps the arithmetic finite


def _positive(value: float | None, flag: str, what: str) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"{flag} {value:g}: give {what}, a positive number")


def _bits(value: float | None, flag: str) -> None:
    if value is not None and not (math.isfinite(value) and 1 <= value <= 32):
        raise UserError(f"{flag} {value:g}: give bits per value between 1 and 32 (e.g. {flag} 8)")


def parse_measured(text: str) -> list[tuple[int, float]]:
    """'16:31,1441:20' -> [(16, 31.0), (1441, 20.0)] (context tokens, tokens/s), ascending."""
    out: dict[int, float] = {}
    example = "(example: --measured 16:31,1441:20, context:tokens/s)"
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        ctx, sep, tps = part.partition(":")
        try:
            c, v = int(ctx), float(tps)
        except ValueError:
            raise UserError(f"--measured {text!r}: {part!r} is not CONTEXT:TOKENS_PER_S {example}") from None
        if not sep or c < 0 or not (math.isfinite(v) and v > 0):
            raise UserError(f"--measured {text!r}: {part!r} is not CONTEXT:TOKENS_PER_S {example}")
        if c in out:
            raise UserError(f"--measured {text!r}: context {c} is given twice")
        out[c] = v
    if not out:
        raise UserError(f"--measured needs at least one value {example}")
    return sorted(out.items())


def advise(
    target: Path | None = typer.Argument(
        None, help="A run folder from 'tracekit capture' (omit for a projection from model facts)."
    ),
    target_tps: float | None = typer.Option(
        None, "--target-tps", help="Context budget: keep at least this many tokens/s."
    ),
    target_itl: float | None = typer.Option(
        None, "--target-itl", help="Context budget: keep at most this many ms per token."
    ),
    on: str | None = typer.Option(
        None,
        "--on",
        help="A device of the table ('tracekit devices'): with a run, project to it; without, the device the speeds were measured on.",
    ),
    context: str | None = typer.Option(
        None, "--context", "-c", help="Contexts to project at, e.g. 16,1441 (a run adds its own)."
    ),
    generate: int | None = typer.Option(None, "--generate", help="Progressive generation: tokens to generate."),
    prompt: int | None = typer.Option(None, "--prompt", help="Progressive generation: prompt tokens to start from."),
    keep: int | None = typer.Option(None, "--keep", help="Progressive generation: tokens kept at each reset."),
    every: int | None = typer.Option(None, "--every", help="Progressive generation: reset every this many tokens."),
    kv_bits: float | None = typer.Option(
        None,
        "--kv-bits",
        help="With a run: the KV-cache precision to project to (default: half). Without: the model's.",
    ),
    weight_bits: float | None = typer.Option(
        None,
        "--weight-bits",
        help="With a run: the weight precision to project to (default: half). Without: the model's.",
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="No run: the model's shapes from a preset (mistral-7b, llama3-8b, ...)."
    ),
    model_config: Path | None = typer.Option(
        None,
        "--model-config",
        help="The model's shapes from a local config.json (with a run: instead of its manifest's).",
    ),
    measured: str | None = typer.Option(
        None, "--measured", help="No run: speeds you measured, CONTEXT:TOKENS_PER_S,... (e.g. 16:31,1441:20)."
    ),
    compare: list[Path] = typer.Option(
        [],
        "--compare",
        help="Another run of the same model (e.g. another --attn): the measured difference, with intervals.",
    ),
    peak_bandwidth: float | None = typer.Option(
        None, "--peak-bandwidth", help="The measuring device's memory bandwidth in GB/s (a run's, or the traces')."
    ),
    device_name: str | None = typer.Option(
        None, "--device", help="With traces: the device they were recorded on (a name from 'tracekit devices')."
    ),
    fmt: str = typer.Option("text", "--format", "-f", help="text, md or json."),
) -> None:
    """Say what would help, with numbers: each piece of advice says what it rests on (a fit over N
    contexts, the bandwidth bound, an assumption) and carries a 95% interval where it comes from
    measurements. Measurement checks lead (advice on a bad measurement is worse than none); the
    rest is ranked by predicted gain in tokens/s.

    Context budget: the longest context that keeps --target-tps (or --target-itl), from the decode
    fit. Another device (--on): the ceiling there (weights + KV cache over its peak bandwidth), and
    the measured step carried at the same share of peak. Progressive generation: --generate N
    tokens from --prompt P, against resetting to the last --keep W tokens every --every K
    (re-prefill included). Precision: the KV cache and weights at --kv-bits / --weight-bits.
    Attention: the difference against --compare runs, or the capture that would measure it.

    \b
    Examples:
      tracekit advise traces/RUN --target-tps 40 --on h100-sxm
      tracekit advise traces/RUN --generate 4096 --prompt 1024 --keep 512 --every 1024
      tracekit advise traces/RUN-sdpa --compare traces/RUN-math
      tracekit advise --preset mistral-7b --weight-bits 4 --on jetson-orin-agx --context 16,1441 --measured 16:31,1441:20
    """
    from dataclasses import replace

    from tracekit.advise import Plan
    from tracekit.advise import advise as run_advice
    from tracekit.advise.basis import from_facts
    from tracekit.advise.document import to_json
    from tracekit.limits.devices import find_device
    from tracekit.report.advice import from_report
    from tracekit.report.data import build_report

    check_choice(fmt, ("text", "md", "json"), "--format")
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
        if value is not None and not least <= value <= MAX_TOKENS:
            raise UserError(f"{flag} {value}: give a number of tokens from {least} to {MAX_TOKENS:,}")
    _bits(kv_bits, "--kv-bits")
    _bits(weight_bits, "--weight-bits")
    contexts = tuple(parse_int_list(context, "--context")) if context else ()
    device = find_device(on) if on is not None else None
    plan = Plan(target_tps, target_itl, on, contexts, generate, prompt, keep, every, kv_bits, weight_bits)
    if target is not None and not _is_run(target):
        for flag, given in (("--preset", preset), ("--measured", measured), ("--compare", compare or None)):
            if given is not None:
                raise UserError(f"{flag} does not apply to traces ({target}); leave it out")
        result = _traces(target, model_config, device_name, peak_bandwidth, plan, device)
    elif target is not None:
        for flag, given in (("--preset", preset), ("--measured", measured)):
            if given is not None:
                raise UserError(f"{flag} describes a model without a run; with a run ({target}) leave it out")
        data = build_report(target, peak_bandwidth=peak_bandwidth, device=device_name, model_config=model_config)
        others = tuple(from_report(o, o.findings) for o in (build_report(p) for p in compare))
        result = run_advice(from_report(data, data.findings), plan, on=device, compare=others, run=str(target))
    else:
        if compare:
            raise UserError("--compare compares runs: give a run folder first (tracekit advise RUN --compare OTHER)")
        if peak_bandwidth is not None:
            raise UserError("--peak-bandwidth applies to a run; without one, name the device with --on")
        if (preset is None) == (model_config is None):
            raise UserError(
                "give a run folder, or the model with --preset NAME or --model-config PATH (one of them), "
                "e.g. tracekit advise --preset mistral-7b --on jetson-orin-agx --context 16,1441"
            )
        from tracekit.limits.model import from_config, from_preset, with_sources

        shape = from_preset(preset) if preset is not None else from_config(model_config)  # type: ignore[arg-type]
        if weight_bits is not None:
            shape = with_sources(shape, weight_bits=(weight_bits, "--weight-bits"))
        if kv_bits is not None:
            shape = with_sources(shape, kv_bits=(kv_bits, "--kv-bits"))
        points = parse_measured(measured) if measured is not None else []
        if not points and not contexts:
            raise UserError("give --context (contexts to project at) or --measured (speeds you measured)")
        what = f"preset {preset}" if preset is not None else str(model_config)
        # Without a run the bits describe the model; the precision advice halves from there.
        plan = replace(plan, on=None, kv_bits=None, weight_bits=None)
        result = run_advice(from_facts(shape, device, points, what), plan, run="")
    if fmt == "json":
        print(json.dumps(to_json(result), indent=2, allow_nan=False))
        return
    _print(result, as_markdown=fmt == "md")


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
    from tracekit.advise import advise_steps
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


def _print(result: object, *, as_markdown: bool) -> None:
    from tracekit.advise.model import AdviceSet
    from tracekit.report.renderers import markdown
    from tracekit.report.sections import Bullets, Paragraph, Table, advice_section

    assert isinstance(result, AdviceSet)
    sec = advice_section(result)
    if as_markdown:
        print(markdown.section(sec, level="#"))
        return
    lines = [f"{sec.title} ({printable(result.source)})", ""]
    for block in sec.blocks:
        if isinstance(block, Bullets):
            for i, it in enumerate(block.items, 1):
                lead = f"{it.label}: " if it.label else ""
                lines.append(printable(f"{i}. [{it.tag}] {lead}{it.text}"))
                lines.append("")
        elif isinstance(block, Paragraph):
            lines += [printable(f"{block.label} {block.text}"), ""]
        elif isinstance(block, Table):
            widths = [max(len(r[i]) for r in [block.head, *block.rows]) for i in range(len(block.head))]
            for r in [block.head, *block.rows]:
                lines.append(
                    printable("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
                )
    print("\n".join(lines).rstrip())
