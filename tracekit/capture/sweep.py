"""The capture sweep: for each context length, an unprofiled timing pass and a profiled pass.

Each finished context is on disk (trace + manifest, written atomically) before the next starts,
so Ctrl-C or a crash keeps every finished context; out-of-memory at one context marks it failed
and the sweep goes on.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule

import tracekit
from tracekit import annotations as ann
from tracekit.capture.backends import create_backend
from tracekit.capture.backends.base import Backend, CaptureOptions, Generation, device_facts, measure_bandwidth
from tracekit.errors import Interrupted, UserError
from tracekit.fsutil import atomic_open, new_run_dir
from tracekit.manifest import SCHEMA, ContextEntry, Manifest, Timings, trace_file, write_manifest


@dataclass
class SweepOptions:
    contexts: list[int]
    tokens: int = 32
    profile_steps: int = 8
    out: Path = Path("traces")
    name: str | None = None
    measure_bandwidth: bool = True


ProgressFn = Callable[[str, int, int], None]  # (description, done, total)
# Called once a context's trace and manifest entry are on disk (the pipeline writes the enriched
# twin here); it may update the entry, which is written again afterwards.
AfterContext = Callable[[Path, ContextEntry], None]


def synthetic_prompt(length: int, vocab: int, seed: int) -> list[int]:
    rng = random.Random(seed * 1_000_003 + length)
    return [rng.randrange(1, vocab) for _ in range(length)]


def validate(sweep: SweepOptions, backend_max: int | None = None) -> None:
    if not sweep.contexts:
        raise UserError("--context needs at least one length, e.g. --context 128,512,1024")
    if any(c <= 0 for c in sweep.contexts):
        raise UserError("--context lengths must be positive")
    if sweep.tokens <= 0:
        raise UserError("--tokens must be at least 1")
    if sweep.profile_steps <= 0:
        raise UserError("--profile-steps must be at least 1")
    if backend_max is not None:
        worst = max(sweep.contexts) + sweep.tokens
        if worst > backend_max:
            raise UserError(
                f"context {max(sweep.contexts)} + {sweep.tokens} tokens exceeds the model's maximum of "
                f"{backend_max} tokens; lower --context or --tokens"
            )


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def run_capture(
    opts: CaptureOptions,
    sweep: SweepOptions,
    progress: ProgressFn | None = None,
    *,
    backend: Backend | None = None,
    after_context: AfterContext | None = None,
) -> Path:
    """Capture a sweep and return the new run directory. Never overwrites an existing run.

    Each finished context is in the manifest before ``after_context`` runs, so an interruption
    there loses nothing that was measured."""
    validate(sweep)
    be = backend or create_backend(opts)
    validate(sweep, be.max_context())
    contexts = sorted(set(sweep.contexts))
    model = Path(opts.model).name if opts.model else opts.preset
    stem = sweep.name or f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{be.name}-{model}-{opts.attn}"
    run_dir = new_run_dir(Path(sweep.out), stem)
    device = device_facts(be.device)
    if sweep.measure_bandwidth:
        try:
            device.measured_bandwidth_gbps = round(measure_bandwidth(be.device), 2)
        except Exception as exc:  # noqa: BLE001 - a failed measurement only loses the figure
            device.measured_bandwidth_error = str(exc)
    manifest = Manifest(
        schema=SCHEMA,
        tracekit_version=tracekit.__version__,
        torch_version=str(torch.__version__),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        device=device,
        backend=be.name,
        model=be.model_facts(),
        settings={**asdict(opts), "contexts": contexts, "tokens": sweep.tokens, "profile_steps": sweep.profile_steps},
    )
    write_manifest(run_dir, manifest)
    total = len(contexts) * 2 * sweep.tokens
    done = 0
    try:
        be.warmup()
        for ctx in contexts:
            desc = f"context {ctx}"

            def tick(desc: str = desc) -> None:
                nonlocal done
                done += 1
                if progress is not None:
                    progress(desc, min(done, total), total)

            entry = _capture_context(be, opts, sweep, ctx, run_dir, tick)
            manifest.contexts.append(entry)
            write_manifest(run_dir, manifest)
            if after_context is not None and entry.status == "ok":
                try:
                    after_context(run_dir, entry)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - the captured context stands whatever happens after
                    entry.error = f"after capture: {exc}"
                write_manifest(run_dir, manifest)
            done = (contexts.index(ctx) + 1) * 2 * sweep.tokens
            if progress is not None:
                progress(desc, done, total)
        manifest.complete = True
    except KeyboardInterrupt:
        manifest.interrupted = True
        try:
            write_manifest(run_dir, manifest)
        finally:
            _clean_temp(run_dir)
        raise Interrupted(run_dir) from None
    except BaseException:
        _clean_temp(run_dir)  # a full disk or any failure leaves no temporary files behind
        raise
    finally:
        be.close()
    write_manifest(run_dir, manifest)
    return run_dir


def _clean_temp(run_dir: Path) -> None:
    for p in run_dir.glob(".tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _capture_context(
    be: Backend, opts: CaptureOptions, sweep: SweepOptions, ctx: int, run_dir: Path, tick: Callable[[], None]
) -> ContextEntry:
    prompt = synthetic_prompt(ctx, be.vocab_size(), opts.seed)
    try:
        timed = be.generate(prompt, sweep.tokens, on_step=None)
        for _ in range(sweep.tokens):
            tick()
        trace_name = trace_file(ctx)
        profiled = _profiled_pass(be, prompt, sweep, ctx, run_dir / trace_name, tick)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad context must not end the sweep
        if not _is_oom(exc):
            raise
        if be.device.type == "cuda":
            torch.cuda.empty_cache()
        return ContextEntry(context_tokens=ctx, status="failed", error=f"out of memory: {str(exc).splitlines()[0]}")
    steps = min(sweep.profile_steps, max(0, sweep.tokens - 1))
    return ContextEntry(
        context_tokens=ctx,
        status="ok",
        trace=trace_name,
        timings=_timings(timed, profiled, steps),
        profiled_steps=steps,
    )


def _timings(timed: Generation, profiled: Generation, steps: int) -> Timings:
    dec = timed.decode_s
    prof = profiled.decode_s[:steps]
    return Timings(
        prefill_s=timed.prefill_s,
        prefill_s_unsynced=timed.prefill_s_unsynced,
        decode_s_per_token=dec,
        tokens_per_s=(len(dec) / sum(dec)) if dec and sum(dec) > 0 else None,
        profiled_tokens_per_s=(len(prof) / sum(prof)) if prof and sum(prof) > 0 else None,
        profiled_decode_s_per_token=prof,
    )


@contextmanager
def kineto_quiet() -> Iterator[None]:
    """Hold back libkineto's ``USDT: ... profiler_start/stop`` lines, written straight to file
    descriptor 2 whenever the profiler starts or stops; anything else it writes is passed on."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = [ln for ln in tmp.read().decode(errors="replace").splitlines(True) if not ln.startswith("USDT:")]
            if rest:
                sys.stderr.write("".join(rest))


def _check_written(written: list[Path], where: Path) -> None:
    """Kineto reports nothing when it cannot write (a full disk): the trace must be there and end
    like JSON, or the capture stops with one line saying why."""
    ok = False
    if written:
        try:
            with open(written[-1], "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - 64))
                ok = fh.read().rstrip().endswith((b"}", b"]"))
        except OSError:
            ok = False
    if not ok:
        full = shutil.disk_usage(where).free < (1 << 20)
        why = "no space left on device" if full else "the file is missing or incomplete"
        raise UserError(f"torch.profiler could not write its trace into {where} ({why})")


def _profiled_pass(
    be: Backend, prompt: list[int], sweep: SweepOptions, ctx: int, dest: Path, tick: Callable[[], None]
) -> Generation:
    """Generate under torch.profiler; the schedule records the prefill and the first decode steps."""
    activities = [ProfilerActivity.CPU]
    if be.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    prefill = be.prefill_steps(ctx)
    active = prefill + min(sweep.profile_steps, max(0, sweep.tokens - 1))
    tmp_dir = dest.parent / f".tmp-{dest.name}"
    tmp_dir.mkdir(exist_ok=True)
    written: list[Path] = []

    def on_ready(p: profile) -> None:
        raw = tmp_dir / "trace.json"
        p.export_chrome_trace(str(raw))
        written.append(raw)

    sched = schedule(wait=0, warmup=1, active=active, repeat=1)
    prof = profile(activities=activities, schedule=sched, on_trace_ready=on_ready, record_shapes=False)
    running = ExitStack()
    with kineto_quiet():
        running.enter_context(prof)
    try:
        with record_function(ann.WARMUP):
            torch.zeros(1, device=be.device).add_(1)
        with kineto_quiet():
            prof.step()

        def step() -> None:
            with kineto_quiet():
                prof.step()
            tick()

        gen = be.generate(prompt, sweep.tokens, on_step=step)
    finally:
        with kineto_quiet():
            running.close()
    _check_written(written, dest.parent)
    with (
        open(written[-1], "rb") as src,
        atomic_open(dest) as fh,
        gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=0) as gz,
    ):
        shutil.copyfileobj(src, gz, 1 << 20)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return gen
