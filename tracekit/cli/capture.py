"""``tracekit capture``: record a sweep of streaming generation across context lengths."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from tracekit.cli.common import check_choice, err, parse_int_list
from tracekit.sanitize import printable


def capture(
    context: str = typer.Option(
        "128,512,1024,2048", "--context", "-c", help="Prompt lengths to sweep, comma-separated (e.g. 128,1k,4096)."
    ),
    tokens: int = typer.Option(32, "--tokens", "-n", help="Tokens generated per context length."),
    backend: str = typer.Option("builtin", help="Engine: builtin (no downloads), hf, exllamav2."),
    preset: str = typer.Option("tiny", help="Builtin shapes: tiny (CPU-friendly), llama2-7b, mistral-7b, llama3-8b."),
    model: str | None = typer.Option(None, help="Model directory for --backend hf or exllamav2 (local files only)."),
    attn: str = typer.Option(
        "sdpa",
        help="Attention: builtin sdpa|math; hf sdpa|eager|flash_attention_2; exllamav2 flash|xformers|sdpa|matmul.",
    ),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    dtype: str = typer.Option("auto", help="auto (float32 on CPU, float16 on CUDA), float32, bfloat16, float16."),
    chunk: int = typer.Option(512, help="Prefill in chunks of at most this many tokens."),
    profile_steps: int = typer.Option(
        8, "--profile-steps", help="Decode steps recorded in each trace (bounds its size)."
    ),
    out: Path = typer.Option(Path("traces"), "--out", "-o", help="Parent folder; each run gets a new folder inside."),
    name: str | None = typer.Option(None, help="Name of the run folder (default: time, backend, preset, attention)."),
    seed: int = typer.Option(0, help="Seed for the random weights and the synthetic prompt."),
    no_graphs: bool = typer.Option(
        False, "--no-graphs", help="exllamav2: disable CUDA graphs so kernels attribute one by one."
    ),
    no_enrich: bool = typer.Option(
        False, "--no-enrich", help="Skip writing the Perfetto-enriched trace beside each raw one."
    ),
) -> None:
    """Capture torch.profiler traces of streaming generation at several context lengths.

    For each length: an unprofiled pass measures honest timings (prefill with and without device
    synchronization, each decode step synchronized), then a profiled pass records the prefill and
    --profile-steps decode steps. The run folder holds one trace per context (opens in Perfetto as
    is) and manifest.json; its path is the last line printed.

    Example: tracekit capture --context 128,1024,4096 --tokens 32
    """
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tracekit.capture.backends import BACKENDS
    from tracekit.capture.backends.base import CaptureOptions
    from tracekit.capture.sweep import SweepOptions, validate
    from tracekit.fsutil import check_out_folder, check_run_name
    from tracekit.pipeline import capture_run

    check_choice(backend, tuple(BACKENDS), "--backend")
    if name is not None:
        check_run_name(name)
    sweep = SweepOptions(
        contexts=parse_int_list(context, "--context"),
        tokens=tokens,
        profile_steps=profile_steps,
        out=out,
        name=name,
    )
    validate(sweep)
    check_out_folder(out)
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
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err.rich,
        transient=False,
        disable=not err.is_terminal and os.environ.get("TRACEKIT_PROGRESS") != "1",
    )
    with progress:
        task = progress.add_task("loading model", total=None)

        def on_progress(desc: str, done: int, total: int) -> None:
            progress.update(task, description=desc, completed=done, total=total)

        try:
            run_dir = capture_run(opts, sweep, on_progress, enrich=not no_enrich)
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
    for c in m.contexts:
        t = c.timings
        if c.status == "ok" and t.tokens_per_s:
            err.print(
                f"  context {c.context_tokens:>6}: prefill {t.prefill_s:.3f} s, decode {t.tokens_per_s:.1f} tokens/s"
                f" ({t.profiled_tokens_per_s or 0:.1f} profiled)"
            )
        else:
            err.print(f"  context {c.context_tokens:>6}: {c.status} {c.error or ''}")
    print(printable(str(run_dir)))
