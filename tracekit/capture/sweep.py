"""The capture sweep: interleaved rounds over the context lengths, timed and profiled.

Anything that changes on the machine during a sweep (a load burst, a clock change) must not read
as a context effect, so the contexts are measured in rounds: each round visits every context
(ascending, then descending in the next round, so a slow drift hits every context alike), and
each visit runs the timed decode steps (warm-up steps dropped) and a few profiled ones. Where the
backend keeps KV caches, each context is prefilled once and every round decodes from that
cache; the prefill is timed again in the first ``prefill_repeats`` rounds for its own interval.
The thread count follows the cores other processes leave free (``cpuload``).

The manifest is written atomically after every context of every round, so Ctrl-C or a crash
keeps every finished round; out-of-memory at one context marks it failed and the sweep goes on.
"""

from __future__ import annotations

import datetime as _dt
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import tracekit
from tracekit.capture import profiled
from tracekit.capture.backends import create_backend
from tracekit.capture.backends.base import (
    Backend,
    CaptureOptions,
    Generation,
    StepCallback,
    device_facts,
    measure_bandwidth,
)
from tracekit.capture.cpuload import LoadMonitor
from tracekit.capture.profiled import kineto_quiet
from tracekit.capture.timings import Measured
from tracekit.errors import Interrupted, UserError
from tracekit.manifest import SCHEMA, ContextEntry, Manifest, trace_file, write_manifest
from tracekit.outputs import new_run_dir

# Five rounds keep `make demo` (128, 1024, 4096 x 32 tokens, builtin tiny) near half a minute of
# capture on 2 cores; three timed prefills per context bound the cost of the 4096-token one.
DEFAULT_ROUNDS = 5
DEFAULT_PREFILL_REPEATS = 3
WARMUP_STEPS = 2


@dataclass
class SweepOptions:
    contexts: list[int]
    tokens: int = 32
    profile_steps: int = 16  # decode steps recorded per context in all, spread over the rounds
    out: Path = Path("traces")
    name: str | None = None
    measure_bandwidth: bool = True
    rounds: int = DEFAULT_ROUNDS
    prefill_repeats: int = DEFAULT_PREFILL_REPEATS
    warmup_steps: int = WARMUP_STEPS  # dropped at the start of each round's timed decode


ProgressFn = Callable[[str, int, int], None]  # (description, done, total)
# Called once a context's final trace and manifest entry are on disk (`tracekit capture` writes the
# enriched twin here); it may update the entry, which is written again afterwards.
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
    if sweep.rounds <= 0:
        raise UserError("--rounds must be at least 1")
    if sweep.prefill_repeats <= 0:
        raise UserError("--prefill-repeats must be at least 1")
    if sweep.warmup_steps < 0:
        raise UserError("the warm-up steps cannot be negative")
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

    Every context is in the manifest (with its first trace) once round 1 has visited it, and the
    manifest is rewritten after each context of each round, so an interruption keeps every
    finished round. ``after_context`` runs once a context's final trace is on disk."""
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
    plan = profile_plan(sweep.tokens, sweep.profile_steps, sweep.rounds)
    manifest = Manifest(
        schema=SCHEMA,
        tracekit_version=tracekit.__version__,
        torch_version=str(torch.__version__),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        device=device,
        backend=be.name,
        model=be.model_facts(),
        settings={
            **asdict(opts),
            "contexts": contexts,
            "tokens": sweep.tokens,
            "profile_steps": sweep.profile_steps,
            "rounds": sweep.rounds,
            "prefill_repeats": sweep.prefill_repeats if be.reuses_cache else sweep.rounds,
            "warmup_steps": sweep.warmup_steps,
            "cache_reused": be.reuses_cache,
            "order": "round-robin over the contexts, ascending in odd rounds and descending in even ones",
        },
    )
    write_manifest(run_dir, manifest)
    states = [_Context(c, synthetic_prompt(c, be.vocab_size(), opts.seed), sweep, be.reuses_cache) for c in contexts]
    tmp = run_dir / ".tmp-segments"
    tmp.mkdir()
    monitor = LoadMonitor(be.device)
    total = sweep.rounds * len(states)
    done = 0
    try:
        be.warmup()
        device.threads = monitor.before()
        device.background_load = monitor.record
        for r in range(sweep.rounds):
            monitor.round_start()
            for st in states if r % 2 == 0 else reversed(states):
                if st.stopped:
                    continue
                if progress is not None:
                    progress(f"round {r + 1}/{sweep.rounds}, context {st.ctx}", done, total)
                _round_unit(be, sweep, st, r, plan, run_dir, tmp)
                if r == 0 and st.entry is not None:
                    manifest.contexts.append(st.entry)
                write_manifest(run_dir, manifest)
                done += 1
            monitor.round_end()
            write_manifest(run_dir, manifest)
        if progress is not None:
            progress("writing traces", total, total)
        for st in states:
            _finish_context(st, run_dir, after_context)
            write_manifest(run_dir, manifest)
        manifest.complete = True
    except KeyboardInterrupt:
        monitor.finish()
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
        monitor.restore()
        be.release()
        be.close()
    monitor.finish()
    write_manifest(run_dir, manifest)
    _clean_temp(run_dir)
    return run_dir


def profile_plan(tokens: int, profile_steps: int, rounds: int) -> list[list[int]]:
    """Which decode steps each round's profiled segment records: the first ``profile_steps`` steps
    of the generation (at most ``tokens - 1``), in contiguous runs spread over the rounds, so no
    step is recorded twice and each round contributes."""
    steps = list(range(1, min(profile_steps, max(0, tokens - 1)) + 1))
    base, extra = divmod(len(steps), rounds)
    out, i = [], 0
    for r in range(rounds):
        n = base + (1 if r < extra else 0)
        out.append(steps[i : i + n])
        i += n
    return out


def _clean_temp(run_dir: Path) -> None:
    for p in run_dir.glob(".tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


class _Context:
    """One context's prompt, manifest entry, trace segments and measurements across rounds."""

    def __init__(self, ctx: int, prompt: list[int], sweep: SweepOptions, reused: bool) -> None:
        self.ctx = ctx
        self.prompt = prompt
        self.entry: ContextEntry | None = None
        self.segments: list[Path] = []
        self.stopped = False
        self.measured = Measured(ctx, sweep.warmup_steps, reused)


def _round_unit(
    be: Backend, sweep: SweepOptions, st: _Context, r: int, plan: list[list[int]], run_dir: Path, tmp: Path
) -> None:
    """One context's share of round ``r``: (round 1: the profiled prefill, which also prepares the
    kept cache) a timed prefill repeat, the timed decode steps, a profiled segment."""
    try:
        if r == 0:
            _profiled(be, st, 0, plan[0], tmp, sweep.tokens)
            trace = trace_file(st.ctx)
            profiled.merge(st.segments, run_dir / trace)  # on disk now; rewritten with every round at the end
            st.entry = ContextEntry(context_tokens=st.ctx, status="ok", trace=trace)
        _timed(be, sweep, st, r)
        if r > 0 and plan[r]:
            _profiled(be, st, r, plan[r], tmp, sweep.tokens)
        elif r > 0:
            st.measured.add_profiled([], [])  # every step is recorded already
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one context out of memory must not end the sweep
        if not _is_oom(exc):
            raise
        if be.device.type == "cuda":
            torch.cuda.empty_cache()
        st.stopped = True
        msg = f"out of memory: {str(exc).splitlines()[0]}"
        if st.entry is None:
            st.entry = ContextEntry(context_tokens=st.ctx, status="failed", error=msg)
            return
        st.entry.error = f"{msg} (round {r + 1}; later rounds skipped)"
    assert st.entry is not None
    st.entry.timings = st.measured.timings()
    st.entry.profiled_steps = sum(len(s) for s in st.measured.profiled_steps_by_round)


def _timed(be: Backend, sweep: SweepOptions, st: _Context, r: int) -> None:
    n = sweep.tokens
    if be.reuses_cache:
        if r < sweep.prefill_repeats:
            st.measured.add_prefill(be.prepare(st.prompt, n))
        g = be.decode_from(st.prompt, 0, n - 1) if n > 1 else Generation()
    else:
        g = be.generate(st.prompt, n)
        st.measured.add_prefill(g)
    st.measured.decode_by_round.append(list(g.decode_s))


def _profiled(be: Backend, st: _Context, r: int, steps: list[int], tmp: Path, tokens: int) -> None:
    """Record the decode ``steps`` (and, in round 1, the prefill) of this context in a new segment."""
    dest = tmp / f"context-{st.ctx}-round-{r + 1}.json"
    prompt = st.prompt
    prefill = be.prefill_steps(st.ctx) if r == 0 else 0
    if be.reuses_cache:

        def run(on_step: StepCallback) -> Generation:
            if r == 0:
                g = be.prepare(prompt, tokens, on_step)
                if steps:
                    g.decode_s = be.decode_from(prompt, 0, len(steps), on_step).decode_s
                return g
            return be.decode_from(prompt, steps[0] - 1, len(steps), on_step)

        gen = profiled.record(be, run, dest, skip=0, active=prefill + len(steps))
        decode_s = gen.decode_s
    else:
        first = steps[0] if steps else 1
        skip = 0 if r == 0 else be.prefill_steps(st.ctx) + first - 1
        last = steps[-1] if steps else 0
        gen = profiled.record(
            be, lambda on_step: be.generate(prompt, last + 1, on_step), dest, skip=skip, active=prefill + len(steps)
        )
        decode_s = gen.decode_s[first - 1 :] if steps else []
    st.segments.append(dest)
    st.measured.add_profiled(steps, decode_s)


def _finish_context(st: _Context, run_dir: Path, after_context: AfterContext | None) -> None:
    """Write the context's trace from every round's segment, then hand it to ``after_context``."""
    entry = st.entry
    if entry is None or entry.status != "ok" or entry.trace is None:
        return
    if len(st.segments) > 1:
        profiled.merge(st.segments, run_dir / entry.trace)
    if after_context is not None:
        try:
            after_context(run_dir, entry)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - the captured context stands whatever happens after
            entry.error = f"after capture: {exc}"


__all__ = ["AfterContext", "ProgressFn", "SweepOptions", "kineto_quiet", "run_capture", "synthetic_prompt", "validate"]
