"""``tracekit advise``: what would help, with numbers (context budget, another device, context
resets, cache and weight precision, attention implementation), measurement checks first."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from tracekit.cli import limit_flags as limit
from tracekit.cli.common import MAX_TOKENS, check_choice, number_option, parse_int_list
from tracekit.errors import UserError
from tracekit.sanitize import printable


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
    target_tps: float | None = number_option(
        "--target-tps", 0.001, 1e7, "Context budget: keep at least this many tokens/s.", integer=False
    ),
    target_itl: float | None = number_option(
        "--target-itl", 0.001, 1e7, "Context budget: keep at most this many ms per token.", integer=False
    ),
    on: str | None = typer.Option(
        None,
        "--on",
        help="A device of the table ('tracekit devices'): with a run, project to it; without, the device the speeds were measured on.",
    ),
    context: str | None = typer.Option(
        None, "--context", "-c", help="Contexts to project at, e.g. 16,1441 (a run adds its own)."
    ),
    generate: int | None = number_option("--generate", 1, MAX_TOKENS, "Progressive generation: tokens to generate."),
    prompt: int | None = number_option(
        "--prompt", 0, MAX_TOKENS, "Progressive generation: prompt tokens to start from."
    ),
    keep: int | None = number_option("--keep", 0, MAX_TOKENS, "Progressive generation: tokens kept at each reset."),
    every: int | None = number_option(
        "--every", 1, MAX_TOKENS, "Progressive generation: reset every this many tokens."
    ),
    kv_bits: float | None = number_option(
        "--kv-bits",
        1,
        64,
        "With a run: the KV-cache precision to project to (default: half). Without: the model's.",
        integer=False,
    ),
    weight_bits: float | None = number_option(
        "--weight-bits",
        1,
        64,
        "With a run: the weight precision to project to (default: half). Without: the model's.",
        integer=False,
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="No run: the model's shapes from a preset (mistral-7b, llama3-8b, ...)."
    ),
    model_config: Annotated[
        Path | None,
        limit.model_config("The model's shapes from a local config.json (with a run: instead of its manifest's)."),
    ] = None,
    measured: str | None = typer.Option(
        None, "--measured", help="No run: speeds you measured, CONTEXT:TOKENS_PER_S,... (e.g. 16:31,1441:20)."
    ),
    compare: list[Path] = typer.Option(
        [],
        "--compare",
        help="Another run of the same model (e.g. another --attn): the measured difference, with intervals.",
    ),
    peak_bandwidth: Annotated[
        float | None, limit.peak_bandwidth("The measuring device's memory bandwidth in GB/s (a run's, or the traces').")
    ] = None,
    device_name: Annotated[
        str | None, limit.device("With traces: the device they were recorded on (a name from 'tracekit devices').")
    ] = None,
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
    from tracekit.advice.document import to_json
    from tracekit.api.advise import advise as run_advice

    check_choice(fmt, ("text", "md", "json"), "--format")
    result = run_advice(
        target,
        target_tps=target_tps,
        target_itl=target_itl,
        on=on,
        context=tuple(parse_int_list(context, "--context")) if context else (),
        generate=generate,
        prompt=prompt,
        keep=keep,
        every=every,
        kv_bits=kv_bits,
        weight_bits=weight_bits,
        preset=preset,
        model_config=model_config,
        measured=parse_measured(measured) if measured is not None else (),
        compare=compare,
        peak_bandwidth=peak_bandwidth,
        device=device_name,
    ).result
    if fmt == "json":
        print(json.dumps(to_json(result), indent=2, allow_nan=False))
        return
    _print(result, as_markdown=fmt == "md")


def _print(result: object, *, as_markdown: bool) -> None:
    from tracekit.advice.model import AdviceSet
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
