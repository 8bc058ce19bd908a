"""The run manifest: what a capture recorded, per context length (pure Python, no torch).

Contract: fields may be added, never renamed. ``schema`` names the version.
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
    device: dict[str, Any]
    backend: str
    model: dict[str, Any]
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
