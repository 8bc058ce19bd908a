"""The run folder and its manifest: what a capture recorded, per context length (pure Python, no torch).

Contract: fields may be added, never renamed. ``schema`` names the version. Every name in a run
folder is decided here: the manifest's, the report's (``report_file``, ``REPORT_PLOTS``) and the
traces a capture writes (``trace_file``, ``enriched_file``). The output policy
(``tracekit.outputs``) reads them to tell a run folder and the report's own files.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path, PurePath
from typing import Any

import msgspec

from tracekit.errors import UserError
from tracekit.files import regular_file, write_text_atomic

SCHEMA = "tracekit.manifest/1"
MANIFEST = "manifest.json"  # the file that makes a folder a run (``outputs.is_run_folder``)
MAX_MANIFEST_BYTES = 64 << 20  # a manifest is a few kilobytes; anything this large is not one

# What a command may write inside a run folder: the report's own files, nothing else.
REPORT_STEM = "report"
TRACES_REPORT_STEM = "steps-report"  # the report ``tracekit report`` writes beside foreign traces
REPORT_FORMATS = ("md", "html", "json")
REPORT_FILES = tuple(f"{REPORT_STEM}.{ext}" for ext in REPORT_FORMATS)
REPORT_PLOTS = f"{REPORT_STEM}-plots"  # where the Markdown report's plots go (``<stem>-plots``)


TRACE_SUFFIX = ".pt.trace.json.gz"
ENRICHED_SUFFIX = ".enriched.json.gz"


def trace_file(context_tokens: int) -> str:
    """The raw trace of one context length (opens in Perfetto as is)."""
    return f"context-{context_tokens:06d}{TRACE_SUFFIX}"


def enriched_file(trace: str) -> str:
    """The Perfetto-enriched twin of a raw trace."""
    return trace.replace(TRACE_SUFFIX, ENRICHED_SUFFIX)


def report_file(fmt: str) -> str:
    return f"{REPORT_STEM}.{fmt}"


class ModelFacts(msgspec.Struct, omit_defaults=True):
    """What the engine says about the model: shapes, precision, weight bytes (each backend fills it)."""

    name: str = ""
    architecture: str | None = None
    engine_version: str | None = None
    layers: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    hidden: int | None = None
    intermediate: int | None = None
    vocab: int | None = None
    dtype: str | None = None
    dtype_bytes: int | None = None
    parameter_bytes: int | None = None
    attn: str | None = None
    max_context: int | None = None

    def kv_bytes_per_token(self) -> int:
        """Bytes of keys and values one token adds to the cache (0 where a shape is unknown)."""
        parts = (self.layers, self.kv_heads, self.head_dim)
        if any(not x for x in parts):
            return 0
        return (
            2 * int(self.layers or 0) * int(self.kv_heads or 0) * int(self.head_dim or 0) * int(self.dtype_bytes or 2)
        )


class BackgroundLoad(msgspec.Struct, omit_defaults=True):
    """Other processes' use of the CPUs this process may run on, sampled from ``/proc`` before the
    sweep and during each round (in cores: 1.0 is one core kept busy), and the thread counts chosen
    from what was left free. ``high`` and ``too_busy`` are judged when the capture ends."""

    cpus: int = 0  # cores in the process's affinity
    before_cores: float | None = None
    by_round_cores: list[float] = []
    mean_cores: float | None = None
    max_cores: float | None = None
    threads_by_round: list[int] = []
    high: bool = False  # enough to disturb timings: they are flagged in the report
    too_busy: bool = False  # not even one core was left free: the timings are not a fair measure
    gpu_utilization_before_pct: float | None = None  # where visible (NVML), before the sweep
    note: str | None = None


class DeviceFacts(msgspec.Struct, omit_defaults=True):
    """The device a run was captured on."""

    kind: str = ""  # "cuda" | "cpu"
    name: str = ""
    memory_bytes: int | None = None
    capability: str | None = None
    threads: int | None = None
    measured_bandwidth_gbps: float | None = None
    measured_bandwidth_error: str | None = None
    background_load: BackgroundLoad | None = None


class Timings(msgspec.Struct):
    """What the unprofiled rounds (and the profiled segments) measured at one context length.

    Medians with 95 % intervals (two-stage bootstrap over rounds, then steps: ``tracekit.stats``).
    ``decode_s_per_token`` holds the steps the figures use (warm-up steps of each round left out,
    rounds in order); ``decode_s_by_round`` holds every step, warm-up included."""

    prefill_s: float | None = None  # median of the timed prefill repeats (synchronized)
    prefill_s_unsynced: float | None = None
    decode_s_per_token: list[float] = []
    tokens_per_s: float | None = None  # 1 / the median decode step
    profiled_tokens_per_s: float | None = None
    profiled_decode_s_per_token: list[float] = []
    rounds: int = 0
    warmup_steps: int = 0
    cache_reused: bool = False  # decode rounds started from a KV cache prefilled once
    decode_s_by_round: list[list[float]] = []
    decode_ms_per_token: float | None = None
    decode_ms_per_token_ci95: list[float] | None = None
    decode_ms_per_token_by_round: list[float] = []  # each round's median step
    tokens_per_s_ci95: list[float] | None = None
    prefill_s_repeats: list[float] = []
    prefill_s_unsynced_repeats: list[float] = []
    prefill_s_ci95: list[float] | None = None
    ttft_s: float | None = None  # time to first token: prefill + first token, as a streaming user waits
    ttft_s_ci95: list[float] | None = None
    ttft_s_repeats: list[float] = []
    itl_ms_p50: float | None = None  # inter-token latency over every kept decode step
    itl_ms_p90: float | None = None
    itl_ms_p99: float | None = None
    profiled_decode_s_by_round: list[list[float]] = []
    profiled_steps_by_round: list[list[int]] = []  # which decode steps each round's profiled segment recorded

    def decode_rounds(self) -> list[list[float]]:
        """The decode steps the figures use, per round (a manifest from before rounds: one round)."""
        if self.decode_s_by_round:
            return kept_steps(self.decode_s_by_round, self.warmup_steps)
        return [list(self.decode_s_per_token)] if self.decode_s_per_token else []


def kept_steps(by_round: list[list[float]], warmup: int) -> list[list[float]]:
    """Each round's steps after its ``warmup`` steps (a round too short keeps its last step)."""
    return [steps[min(warmup, max(0, len(steps) - 1)) :] for steps in by_round]


class ContextEntry(msgspec.Struct):
    context_tokens: int
    status: str  # "ok" | "failed"
    trace: str | None = None
    enriched_trace: str | None = None
    error: str | None = None
    timings: Timings = msgspec.field(default_factory=Timings)
    profiled_steps: int = 0


class Manifest(msgspec.Struct):
    schema: str
    tracekit_version: str
    torch_version: str
    created: str
    device: DeviceFacts
    backend: str
    model: ModelFacts
    settings: dict[str, Any]
    contexts: list[ContextEntry] = []
    complete: bool = False
    interrupted: bool = False


def write_manifest(run_dir: Path, m: Manifest) -> None:
    data = msgspec.to_builtins(m)
    write_text_atomic(run_dir / MANIFEST, json.dumps(data, indent=2) + "\n")


def run_file(run_dir: Path, name: str) -> Path:
    """The path policy: a file named in a manifest, resolved inside its run folder, or refused.

    Names are plain file names; one that is absolute, climbs out with ``..``, or is a link that
    resolves outside the run folder is refused, so a manifest can never make tracekit read or
    serve a file elsewhere."""
    run_dir = Path(run_dir)
    pure = PurePath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or "\x00" in name:
        raise UserError(f"{run_dir / MANIFEST}: names {name!r}, a path outside the run folder; refused")
    p = run_dir / pure
    real_run = Path(os.path.realpath(run_dir))
    if not Path(os.path.realpath(p)).is_relative_to(real_run):
        raise UserError(f"{run_dir / MANIFEST}: {name!r} resolves outside the run folder (a link); refused")
    return p


def _numbers(v: Any) -> list[float]:
    """Every number in a field (lists nested to any depth; booleans and text are not numbers)."""
    if isinstance(v, bool) or v is None:
        return []
    if isinstance(v, (int, float)):
        return [v]
    if isinstance(v, (list, tuple)):
        return [x for item in v for x in _numbers(item)]
    return []


# The physical range of every number a capture writes: counts, sizes, rates and durations are 0 or
# between a nanosecond and 10**15 (a petabyte, a quadrillion tokens per second); durations are at
# most a day; a context at most 16 M tokens. Beyond them the figures overflow ("from inf to inf").
SMALLEST, LARGEST = 1e-9, 1e15
LONGEST_S = 86_400.0
MAX_CONTEXT_TOKENS = 1 << 24
# Work a report does is bootstrap over every kept step of every context: bounded per manifest.
LIMITS = {"TRACEKIT_MAX_CONTEXTS": 1024, "TRACEKIT_MAX_STEPS": 200_000}


def limit(name: str) -> int:
    """A manifest limit, or the whole number its variable sets (the command line's ``_check_environment``
    has refused a bad one)."""
    given = os.environ.get(name, "")
    return int(given) if given.isdigit() else LIMITS[name]


def _bad_numbers(m: Manifest) -> str | None:
    """Where the manifest holds a number no capture writes (negative, not finite, outside the
    physical range), or None: model and device facts, and every timing, are counts, sizes and
    durations."""
    fields = [("model", m.model), ("device", m.device)]
    fields += [(f"context {c.context_tokens} timings", c.timings) for c in m.contexts]
    for where, struct in fields:
        for k in struct.__struct_fields__:
            top = LONGEST_S if where.endswith("timings") and ("_s" in k and "tokens_per_s" not in k) else LARGEST
            for x in _numbers(getattr(struct, k)):
                if not (math.isfinite(x) and (x == 0 or SMALLEST <= x <= top)):
                    return f"{where}.{k} = {x!r}"
    for c in m.contexts:
        if not 0 < c.context_tokens <= MAX_CONTEXT_TOKENS or not 0 <= c.profiled_steps <= LARGEST:
            return f"context {c.context_tokens}"
    return None


def _too_much(f: Path, m: Manifest) -> str | None:
    """Why a manifest holds more than a report can bound its work by, or None."""
    seen: set[int] = set()
    traces: dict[str, int] = {}
    for c in m.contexts:
        if c.context_tokens in seen:
            return f"context {c.context_tokens} is listed twice; a capture lists each context once"
        seen.add(c.context_tokens)
        if c.trace is not None:
            if c.trace in traces:
                return f"contexts {traces[c.trace]} and {c.context_tokens} name the same trace {c.trace!r}"
            traces[c.trace] = c.context_tokens
    steps = sum(len(r) for c in m.contexts for r in c.timings.decode_s_by_round) + sum(
        len(c.timings.decode_s_per_token) for c in m.contexts
    )
    most = limit("TRACEKIT_MAX_STEPS")
    if steps > most:
        return (
            f"{steps:,} decode steps, over the limit of {most:,} a report bootstraps "
            f"(raise it with TRACEKIT_MAX_STEPS={steps})"
        )
    return None


class _Contexts(msgspec.Struct):
    contexts: list[msgspec.Raw] = []


def read_manifest(run_dir: Path) -> Manifest:
    p = Path(run_dir)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    f = p / MANIFEST
    if not p.is_dir():
        raise UserError(f"{p}: not a run directory (expected a folder written by 'tracekit capture')")
    if not f.exists() and not f.is_symlink():
        raise UserError(f"{p}: no {MANIFEST} here; is this a folder written by 'tracekit capture'?")
    if regular_file(f, "manifest").st_size > MAX_MANIFEST_BYTES:
        raise UserError(f"{f}: {f.stat().st_size:,} bytes is far too large for a manifest; refused")
    data = f.read_bytes()
    try:
        # Counted before they are built: a context costs kilobytes once decoded, so a small file can
        # ask for more memory than the machine has (docs/reliability.md, limits).
        count = len(msgspec.json.decode(data, type=_Contexts).contexts)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        count = 0  # the full decode below says what is wrong
    most = limit("TRACEKIT_MAX_CONTEXTS")
    if count > most:
        raise UserError(
            f"{f}: lists {count:,} contexts, over the limit of {most:,} (raise it with TRACEKIT_MAX_CONTEXTS={count})"
        )
    try:
        m = msgspec.json.decode(data, type=Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UserError(f"{f}: unreadable manifest ({exc})") from None
    except RecursionError:
        raise UserError(f"{f}: unreadable manifest (nested too deeply)") from None
    if not m.schema.startswith("tracekit.manifest/"):
        raise UserError(f"{f}: unknown manifest schema {m.schema!r}")
    bad = _bad_numbers(m)
    if bad is not None:
        raise UserError(
            f"{f}: unreadable manifest ({bad} is outside the range a capture writes: 0, or {SMALLEST:g} to "
            f"{LARGEST:g}; durations at most {LONGEST_S:g} s; contexts at most {MAX_CONTEXT_TOKENS:,} tokens)"
        )
    much = _too_much(f, m)
    if much is not None:
        raise UserError(f"{f}: {much}")
    for c in m.contexts:
        for name in (c.trace, c.enriched_trace):
            if name is not None:
                run_file(p, name)
    return m
