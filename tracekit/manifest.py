"""The run folder and its manifest: what a capture recorded, per context length (pure Python, no torch).

Contract: fields may be added, never renamed. ``schema`` names the version. The names of the
files in a run folder are decided here only (``trace_file``, ``enriched_file``, ``report_file``).
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path, PurePath
from typing import Any

import msgspec

from tracekit.errors import UserError
from tracekit.fsutil import regular_file, write_text_atomic

SCHEMA = "tracekit.manifest/1"
MANIFEST = "manifest.json"
REPORT_STEM = "report"
MAX_MANIFEST_BYTES = 64 << 20  # a manifest is a few kilobytes; anything this large is not one


def trace_file(context_tokens: int) -> str:
    """The raw trace of one context length (opens in Perfetto as is)."""
    return f"context-{context_tokens:06d}.pt.trace.json.gz"


def enriched_file(trace: str) -> str:
    """The Perfetto-enriched twin of a raw trace."""
    return trace.replace(".pt.trace.json.gz", ".enriched.json.gz")


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


class DeviceFacts(msgspec.Struct, omit_defaults=True):
    """The device a run was captured on."""

    kind: str = ""  # "cuda" | "cpu"
    name: str = ""
    memory_bytes: int | None = None
    capability: str | None = None
    threads: int | None = None
    measured_bandwidth_gbps: float | None = None
    measured_bandwidth_error: str | None = None


class Timings(msgspec.Struct):
    prefill_s: float | None = None
    prefill_s_unsynced: float | None = None
    decode_s_per_token: list[float] = []
    tokens_per_s: float | None = None
    profiled_tokens_per_s: float | None = None
    profiled_decode_s_per_token: list[float] = []


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


def is_run_folder(d: Path) -> bool:
    """Whether ``d`` holds a tracekit manifest (what makes a folder a run)."""
    f = Path(d) / MANIFEST
    try:
        if not stat.S_ISREG(os.stat(f).st_mode):
            return False  # a FIFO would block the read
        with open(f, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return b'"tracekit.manifest/' in head


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


def _bad_numbers(m: Manifest) -> str | None:
    """Where the manifest holds a number no capture writes (negative, not finite), or None."""
    for struct, where in ((m.model, "model"), (m.device, "device")):
        for k in struct.__struct_fields__:
            v = getattr(struct, k)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and v >= 0):
                return f"{where}.{k} = {v!r}"
    for c in m.contexts:
        if c.context_tokens <= 0 or c.profiled_steps < 0:
            return f"context {c.context_tokens}"
        t = c.timings
        for k in t.__struct_fields__:
            v = getattr(t, k)
            for x in v if isinstance(v, list) else [v]:
                if x is not None and not (math.isfinite(x) and x >= 0):
                    return f"context {c.context_tokens} timings.{k} = {x!r}"
    return None


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
    try:
        m = msgspec.json.decode(f.read_bytes(), type=Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UserError(f"{f}: unreadable manifest ({exc})") from None
    except RecursionError:
        raise UserError(f"{f}: unreadable manifest (nested too deeply)") from None
    if not m.schema.startswith("tracekit.manifest/"):
        raise UserError(f"{f}: unknown manifest schema {m.schema!r}")
    bad = _bad_numbers(m)
    if bad is not None:
        raise UserError(f"{f}: unreadable manifest ({bad} is not a finite, non-negative number)")
    for c in m.contexts:
        for name in (c.trace, c.enriched_trace):
            if name is not None:
                run_file(p, name)
    return m
