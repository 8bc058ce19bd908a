"""The run folder and its manifest: what a capture recorded, per context length (pure Python, no torch).

Contract: fields may be added, never renamed. ``schema`` names the version. The names of the
files in a run folder are decided here only (``trace_file``, ``enriched_file``, ``report_file``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from tracekit.errors import UserError
from tracekit.fsutil import write_text_atomic

SCHEMA = "tracekit.manifest/1"
MANIFEST = "manifest.json"
REPORT_STEM = "report"


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


def read_manifest(run_dir: Path) -> Manifest:
    p = Path(run_dir)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    f = p / MANIFEST
    if not p.is_dir():
        raise UserError(f"{p}: not a run directory (expected a folder written by 'tracekit capture')")
    if not f.exists():
        raise UserError(f"{p}: no {MANIFEST} here; is this a folder written by 'tracekit capture'?")
    try:
        m = msgspec.json.decode(f.read_bytes(), type=Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UserError(f"{f}: unreadable manifest ({exc})") from None
    if not m.schema.startswith("tracekit.manifest/"):
        raise UserError(f"{f}: unknown manifest schema {m.schema!r}")
    return m
