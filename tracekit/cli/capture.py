"""``tracekit capture``: record a sweep of streaming generation across context lengths."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tracekit.capture.presets import BACKEND_PRESETS, presets_help
from tracekit.cli.common import MAX_TOKENS, Number, check_choice, err, parse_int_list
from tracekit.errors import UserError
from tracekit.sanitize import printable

if TYPE_CHECKING:
    from tracekit.manifest import Manifest


def capture(
    context: str = typer.Option(
        "128,512,1024,2048", "--context", "-c", help="Prompt lengths to sweep, comma-separated (e.g. 128,1k,4096)."
    ),
    tokens: int = typer.Option(
        32, "--tokens", "-n", parser=Number("--tokens", 1, MAX_TOKENS), help="Tokens generated per context length."
    ),
    backend: str = typer.Option("builtin", help="Engine: builtin (no downloads), hf, exllamav2."),
    preset: str = typer.Option(
        "tiny",
        help=f"Model shape with random weights, per backend ({presets_help()}); builtin tiny is CPU-friendly. "
        "hf without --model runs its preset.",
    ),
    model: str | None = typer.Option(None, help="Model directory for --backend hf or exllamav2 (local files only)."),
    attn: str = typer.Option(
        "sdpa",
        help="Attention: builtin sdpa|math; hf sdpa|eager|flash_attention_2; exllamav2 flash|xformers|sdpa|matmul.",
    ),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", help="auto (float32 on CPU, float16 on CUDA), float32, bfloat16, float16."),
    chunk: int = typer.Option(
        512, parser=Number("--chunk", 1, MAX_TOKENS), help="Prefill in chunks of at most this many tokens."
    ),
    profile_steps: int = typer.Option(
        16,
        "--profile-steps",
        parser=Number("--profile-steps", 1, 100_000),
        help="Decode steps recorded in each trace, spread over the rounds (bounds its size).",
    ),
    rounds: int = typer.Option(
        5,
        "--rounds",
        "-r",
        parser=Number("--rounds", 1, 1000),
        help="Interleaved rounds over the contexts; more rounds, narrower intervals.",
    ),
    prefill_repeats: int = typer.Option(
        3,
        "--prefill-repeats",
        parser=Number("--prefill-repeats", 1, 1000),
        help="Timed prefills per context (where the KV cache is kept; else one per round).",
    ),
    out: Path = typer.Option(Path("traces"), "--out", "-o", help="Parent folder; each run gets a new folder inside."),
    name: str | None = typer.Option(None, help="Name of the run folder (default: time, backend, preset, attention)."),
    seed: int = typer.Option(
        0, parser=Number("--seed", 0, 2**32 - 1), help="Seed for the random weights and the synthetic prompt."
    ),
    no_graphs: bool = typer.Option(
        False, "--no-graphs", help="exllamav2: disable CUDA graphs so kernels attribute one by one."
    ),
    no_enrich: bool = typer.Option(
        False, "--no-enrich", help="Skip writing the Perfetto-enriched trace beside each raw one."
    ),
) -> None:
    """Capture torch.profiler traces of streaming generation at several context lengths.

    The contexts are measured in --rounds interleaved rounds (each round visits every context), so
    a change on the machine during the sweep widens the intervals instead of reading as a context
    effect. Each visit times decode steps synchronized (warm-up steps dropped) and records a few
    profiled ones; the builtin and hf backends prefill each context once and decode from that KV
    cache in every round, and time the prefill --prefill-repeats times. The thread count follows
    the cores other processes leave free. The run folder holds one trace per context (opens in
    Perfetto as is) and manifest.json, with medians and 95% intervals; its path is the last line
    printed.

    \b
    Examples:
      tracekit capture --context 128,1024,4096 --tokens 32
      tracekit capture --context 128,1k,4k --rounds 9 --name quiet-run
      tracekit capture --backend hf --model ~/models/Llama-3.2-1B --context 512,2k,8k
    """
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    from tracekit.capture.backends import BACKENDS
    from tracekit.capture.backends.base import CaptureOptions
    from tracekit.capture.sweep import SweepOptions, run_capture, validate
    from tracekit.cli.progress import bar, wanted
    from tracekit.outputs import check_out_folder, check_run_name
    from tracekit.perfetto.export import enrich_context

    check_choice(backend, tuple(BACKENDS), "--backend")
    if name is not None:
        check_run_name(name)
    sweep = SweepOptions(
        contexts=parse_int_list(context, "--context", 1, MAX_TOKENS),
        tokens=tokens,
        profile_steps=profile_steps,
        out=out,
        name=name,
        rounds=rounds,
        prefill_repeats=prefill_repeats,
    )
    validate(sweep)
    check_tokens(tokens, sweep.warmup_steps)
    check_out_folder(out)
    # Said once the model is loaded (a bad --attn or --preset is then an error of its own).
    notes = [random_model_note(preset)] if backend == "hf" and model is None else []
    opts = CaptureOptions(
        backend=backend,
        preset=preset,
        model=model,
        attn=attn,
        device=device,
        dtype=dtype,
        chunk=chunk,
        seed=seed,
        no_graphs=no_graphs,
    )
    progress = bar()
    # Not on a terminal (piped, logged, in CI): a plain line at each step instead of the bar, so
    # a long capture is not silent; TRACEKIT_PROGRESS=0 turns both off.
    lines = LineProgress() if not wanted() and os.environ.get("TRACEKIT_PROGRESS") != "0" else None
    with progress:
        task = progress.add_task("loading model", total=None)

        def on_progress(desc: str, done: int, total: int) -> None:
            while notes:
                progress.console.print(notes.pop(), markup=False, highlight=False, soft_wrap=True)
            progress.update(task, description=desc, completed=done, total=total)
            if lines is not None:
                lines(desc, done, total)

        try:
            run_dir = run_capture(opts, sweep, on_progress, after_context=None if no_enrich else enrich_context)
        except KeyboardInterrupt as exc:
            progress.stop()
            run = getattr(exc, "run_dir", None)
            if run is None:
                err.print("tracekit: interrupted before the run folder was made; nothing was captured")
                raise
            err.print("tracekit: the finished contexts are kept; the manifest marks the run as interrupted")
            print(printable(str(run)))
            raise
    from tracekit.manifest import read_manifest

    m = read_manifest(run_dir)
    for line in summary_lines(m):
        err.print(line)
    print(printable(str(run_dir)))


def random_model_note(preset: str) -> str:
    return (
        f"tracekit: --backend hf without --model runs a random-weight model (--preset {preset}; presets: "
        f"{', '.join(BACKEND_PRESETS['hf'])}): its timings show tracekit at work, not a real model; "
        "give --model DIR for one"
    )


def check_tokens(tokens: int, warmup: int) -> None:
    """Enough tokens for at least one measured decode step: the first token comes from the
    prefill and each round's first ``warmup`` decode steps are dropped."""
    least = warmup + 2
    if 0 < tokens < least:
        raise UserError(
            f"--tokens {tokens} is too few: the first token comes from the prefill and the next {warmup} decode "
            f"steps are warm-up, so at least {least} are needed for one measured step (try --tokens 16)"
        )


class LineProgress:
    """Progress as plain lines on stderr, one per step of the sweep, with the time so far."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last = ""

    def __call__(self, desc: str, done: int, total: int) -> None:
        # From the first finished visit on: a capture refused at once says only why.
        if desc == self.last or done == 0:
            return
        self.last = desc
        count = f" ({done}/{total} done)" if total else ""
        err.print(printable(f"tracekit: {desc}{count}, {time.monotonic() - self.start:.0f} s"))


def _ci(iv: list[float] | None, fmt: str = "{:.3g}") -> str:
    return "" if not iv else f" [{fmt.format(iv[0])}–{fmt.format(iv[1])}]"


def summary_lines(m: Manifest) -> list[str]:
    """Per context: medians with their 95% intervals; then the load the capture ran beside."""
    lines = []
    for c in m.contexts:
        t = c.timings
        if c.status == "ok" and t.tokens_per_s:
            lines.append(
                f"  context {c.context_tokens:>6}: decode {t.decode_ms_per_token or 0:.3g}{_ci(t.decode_ms_per_token_ci95)} ms/token, "
                f"{t.tokens_per_s:.1f}{_ci(t.tokens_per_s_ci95, '{:.1f}')} tokens/s ({t.profiled_tokens_per_s or 0:.1f} profiled); "
                f"TTFT {t.ttft_s or 0:.3g}{_ci(t.ttft_s_ci95)} s; ITL p50/p99 {t.itl_ms_p50 or 0:.3g}/{t.itl_ms_p99 or 0:.3g} ms; "
                f"{t.rounds} rounds (95% intervals)"
            )
        else:
            lines.append(f"  context {c.context_tokens:>6}: {c.status} {c.error or ''}")
    load = m.device.background_load
    if load is not None and load.note:
        lines.append(f"tracekit: {'warning: ' if load.too_busy else ''}{load.note}")
    return lines
