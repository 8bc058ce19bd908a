"""Model facts for the bytes and FLOPs a decode step must move: layers, heads, KV heads, head dim,
weights, sliding-window layers, bits per weight and per cached element. From a local Hugging Face
``config.json`` (never a download), from tracekit's capture presets, or from a run's manifest;
each fact keeps where it came from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from tracekit.capture.presets import PRESETS, SHAPES, Dims, dense_params
from tracekit.errors import UserError
from tracekit.files import regular_file
from tracekit.manifest import ModelFacts

MAX_CONFIG_BYTES = 4 << 20  # a config.json is a few kB; a large one is not a config

# Bits per element of the dtype names configs and torch use.
DTYPE_BITS: dict[str, float] = {
    "float32": 32,
    "fp32": 32,
    "float": 32,
    "tf32": 32,
    "float16": 16,
    "fp16": 16,
    "half": 16,
    "bfloat16": 16,
    "bf16": 16,
    "float8": 8,
    "fp8": 8,
    "float8_e4m3fn": 8,
    "float8_e5m2": 8,
    "int8": 8,
    "uint8": 8,
    "int4": 4,
}

# The dtype family a bit width computes in, for the device's peak FLOP/s.
BITS_DTYPE = {32: "fp32", 16: "bf16", 8: "fp8"}


# What a ModelShape holds besides the facts ``to_json`` reports, each with its source.
_NOT_FACTS = ("source", "name", "tied_embeddings", "max_context")


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    params: int
    weight_bits: float
    kv_bits: float
    sliding_window: int | None
    sliding_layers: int
    source: Mapping[str, str]  # fact -> where it came from ('config.json', 'preset', 'trace shapes', 'manifest')
    name: str = ""
    dtype: str = "bf16"  # the dtype attention and GEMMs compute in (its peak FLOP/s is the roof)
    tied_embeddings: bool = False
    max_context: int | None = None  # the longest context the model was trained for, where its facts say

    def weight_bytes(self) -> float:
        return self.params * self.weight_bits / 8

    def gemm_params(self) -> int:
        """The weights a decode step reads: all but the embedding table, which is a lookup of one
        row a token (tied embeddings are read once, as the output head)."""
        return self.params if self.tied_embeddings else max(0, self.params - self.vocab * self.hidden)

    def step_weight_bytes(self) -> float:
        return self.gemm_params() * self.weight_bits / 8

    def kv_bytes_per_token(self) -> float:
        """Bytes one token of context adds to the cache: K and V, every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_bits / 8

    def kv_bytes(self, context: int) -> float:
        """Bytes of K and V one decode step reads at a context of ``context`` tokens: a sliding-window
        layer reads at most its window."""
        per_layer_token = 2 * self.kv_heads * self.head_dim * self.kv_bits / 8
        full = self.layers - self.sliding_layers
        window = context if self.sliding_window is None else min(context, self.sliding_window)
        return per_layer_token * (full * context + self.sliding_layers * window)

    def to_json(self) -> dict[str, Any]:
        """The facts, each with where it came from (``model_facts`` in the JSON outputs)."""
        facts = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_FACTS}
        return {
            "name": self.name,
            "facts": {k: {"value": v, "source": self.source.get(k, "")} for k, v in facts.items()},
            "weight_bytes": self.weight_bytes(),
            "kv_bytes_per_token": self.kv_bytes_per_token(),
        }


def unwindowed(
    dims: Dims,
    *,
    params: int | None,
    bits: float,
    source: Mapping[str, str],
    name: str,
    dtype: str,
    tied: bool = False,
    max_context: int | None = None,
) -> ModelShape:
    """A model whose every layer attends to the whole context, weights and cache at ``bits``: a
    preset's, a manifest's or a trace's shapes. ``params`` None: those of a Llama-shaped decoder
    of these shapes."""
    return ModelShape(
        **dims,
        params=dense_params(**dims, tied=tied) if params is None else params,
        weight_bits=bits,
        kv_bits=bits,
        sliding_window=None,
        sliding_layers=0,
        source=MappingProxyType(dict(source)),
        name=name,
        dtype=dtype,
        max_context=max_context,
        tied_embeddings=tied,
    )


_RANGES: dict[str, tuple[int, int]] = {
    "num_hidden_layers": (1, 1000),
    "hidden_size": (1, 1_000_000),
    "num_attention_heads": (1, 10_000),
    "num_key_value_heads": (1, 10_000),
    "head_dim": (1, 4096),
    "intermediate_size": (1, 10_000_000),
    "vocab_size": (1, 100_000_000),
    "sliding_window": (1, 1 << 40),
    "max_window_layers": (0, 1000),
}


def _int_field(cfg: Mapping[str, Any], field: str, where: str, default: int | None = None) -> int:
    value = cfg.get(field, default)
    if value is None:
        raise UserError(f"{where}: missing field {field!r}; pass a complete Hugging Face config.json")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise UserError(f"{where}: field {field!r} is {value!r}, not a whole number")
    lo, hi = _RANGES[field]
    if not lo <= int(value) <= hi:
        raise UserError(f"{where}: field {field!r} is {int(value)}, outside {lo}..{hi}")
    return int(value)


def _dtype_bits(cfg: Mapping[str, Any], where: str) -> tuple[str, float, str]:
    raw = cfg.get("torch_dtype", cfg.get("dtype"))
    if raw is None:
        return "bf16", 16.0, "assumed bf16 (config.json names no torch_dtype)"
    name = str(raw).lower().removeprefix("torch.")
    if name not in DTYPE_BITS:
        raise UserError(
            f"{where}: field 'torch_dtype' is {raw!r}, not a dtype tracekit knows ({', '.join(sorted(DTYPE_BITS))})"
        )
    bits = DTYPE_BITS[name]
    return BITS_DTYPE.get(int(bits), "bf16"), bits, "config.json"


def _quant_bits(cfg: Mapping[str, Any], where: str) -> float | None:
    q = cfg.get("quantization_config")
    if not isinstance(q, Mapping):
        return None
    bits = q.get("bits", q.get("w_bit", q.get("weight_bits")))
    if bits is None:
        method = str(q.get("quant_method", "")).lower()
        if "fp8" in method:
            return 8.0
        if "mxfp4" in method or "nvfp4" in method:
            return 4.25  # 4-bit elements and one 8-bit scale per 32
        raise UserError(f"{where}: quantization_config names no 'bits'; pass a config with quantization_config.bits")
    if isinstance(bits, bool) or not isinstance(bits, (int, float)) or not 1 <= bits <= 32:
        raise UserError(f"{where}: field 'quantization_config.bits' is {bits!r}, outside 1..32")
    return float(bits)


def from_config(path: str | Path) -> ModelShape:
    """The model facts a local Hugging Face ``config.json`` states (a folder holding one works too).
    Never downloads. A missing or absurd field is a one-line UserError naming it."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    where = str(p)
    try:
        st = regular_file(p, "config.json")
    except UserError as exc:
        raise UserError(f"{exc}; --model-config takes a local config.json") from None
    if st.st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{where}: {st.st_size:,} bytes is far too large for a config.json; refused")
    try:
        raw = json.loads(p.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UserError(
            f"{where}: not a readable JSON config ({exc.__class__.__name__}); --model-config takes a local config.json"
        ) from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: not a JSON object; --model-config takes a Hugging Face config.json")
    text_config = raw.get("text_config")
    cfg: Mapping[str, Any] = text_config if isinstance(text_config, dict) else raw
    if cfg.get("kv_lora_rank") is not None:
        raise UserError(
            f"{where}: field 'kv_lora_rank' (multi-head latent attention) is not supported; its KV cache is not K and V per head"
        )
    layers = _int_field(cfg, "num_hidden_layers", where)
    hidden = _int_field(cfg, "hidden_size", where)
    heads = _int_field(cfg, "num_attention_heads", where)
    kv_heads = _int_field(cfg, "num_key_value_heads", where, default=heads)
    if kv_heads > heads or heads % kv_heads:
        raise UserError(
            f"{where}: field 'num_key_value_heads' is {kv_heads}, which does not divide num_attention_heads ({heads})"
        )
    default_head_dim = hidden // heads if hidden % heads == 0 else None
    head_dim = _int_field(cfg, "head_dim", where, default=default_head_dim)
    intermediate = _int_field(cfg, "intermediate_size", where)
    vocab = _int_field(cfg, "vocab_size", where)
    dtype, bits, dtype_source = _dtype_bits(cfg, where)
    qbits = _quant_bits(cfg, where) or _quant_bits(raw, where)
    source: dict[str, str] = {k: "config.json" for k in ("layers", "hidden", "heads", "intermediate", "vocab")}
    source["kv_heads"] = (
        "config.json" if "num_key_value_heads" in cfg else "config.json (no num_key_value_heads: as many as heads)"
    )
    source["head_dim"] = "config.json" if "head_dim" in cfg else "config.json (hidden_size / num_attention_heads)"
    source["dtype"] = dtype_source
    source["kv_bits"] = f"{dtype_source} (the cache is assumed to hold the model's dtype)"
    source["weight_bits"] = "config.json quantization_config" if qbits is not None else dtype_source
    experts = cfg.get("num_local_experts", cfg.get("num_experts"))
    tied = bool(cfg.get("tie_word_embeddings", False))
    dims = Dims(
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=intermediate,
        vocab=vocab,
    )
    params = dense_params(**dims, tied=tied)
    source["params"] = "computed from config.json (Llama-shaped layers" + (", tied embeddings)" if tied else ")")
    if isinstance(experts, int) and experts > 1:
        raise UserError(
            f"{where}: field 'num_experts' ({experts}): mixture-of-experts weights read per step depend on routing, "
            "which tracekit does not model yet; pass a dense model's config"
        )
    window, sliding_layers, win_source = _sliding(cfg, layers, where)
    source["sliding_window"] = win_source
    source["sliding_layers"] = win_source
    return ModelShape(
        **dims,
        params=params,
        weight_bits=qbits if qbits is not None else bits,
        kv_bits=bits,
        sliding_window=window,
        sliding_layers=sliding_layers,
        source=MappingProxyType(source),
        name=str(raw.get("_name_or_path") or (raw.get("architectures") or [""])[0] or p.parent.name),
        dtype=dtype,
        tied_embeddings=tied,
        max_context=_max_context(cfg),
    )


def _max_context(cfg: Mapping[str, Any]) -> int | None:
    """``max_position_embeddings`` where it is a plausible whole number, else None: only advice's
    notes use it, so an odd value loses those notes, never the facts the figures need."""
    value = cfg.get("max_position_embeddings")
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1 << 40
    return value if ok else None


def _sliding(cfg: Mapping[str, Any], layers: int, where: str) -> tuple[int | None, int, str]:
    """The sliding window and how many layers use it: ``layer_types`` where the config lists them
    (Gemma 2/3, gpt-oss), Qwen's ``use_sliding_window`` / ``max_window_layers``, else Mistral's
    rule (a ``sliding_window`` applies to every layer)."""
    window_raw = cfg.get("sliding_window")
    if window_raw is None:
        return None, 0, "config.json (no sliding_window)"
    window = _int_field(cfg, "sliding_window", where)
    types = cfg.get("layer_types")
    if isinstance(types, list):
        n = sum(1 for t in types if isinstance(t, str) and "sliding" in t)
        return (window if n else None), n, "config.json layer_types"
    if cfg.get("use_sliding_window") is False:
        return None, 0, "config.json (use_sliding_window false)"
    if "max_window_layers" in cfg and cfg.get("use_sliding_window") is True:
        full = min(layers, _int_field(cfg, "max_window_layers", where))
        return window, layers - full, "config.json (use_sliding_window, max_window_layers)"
    return window, layers, "config.json (sliding_window on every layer)"


def from_preset(name: str, *, dtype_bits: float = 16.0) -> ModelShape:
    """One of tracekit's capture presets (``capture/presets.py``; pure Python, no torch)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    s = PRESETS[name]
    bits_src = "preset (weights and cache assumed bf16)" if dtype_bits == 16.0 else "given"
    source = dict.fromkeys((*SHAPES, "params", "sliding_window", "sliding_layers"), "preset")
    source |= dict.fromkeys(("weight_bits", "kv_bits", "dtype"), bits_src)
    dtype = BITS_DTYPE.get(int(dtype_bits), "bf16")
    return unwindowed(
        s.dims(),
        params=s.parameter_count(),
        bits=dtype_bits,
        source=source,
        name=name,
        dtype=dtype,
        max_context=s.max_context,
    )


def from_manifest(model: ModelFacts) -> ModelShape | None:
    """The facts a tracekit run's manifest recorded (the backend read them off the loaded model);
    None where a shape the bytes need is missing."""
    if any(not x for x in (model.layers, model.heads, model.kv_heads, model.head_dim)):
        return None
    bits = float(8 * (model.dtype_bytes or 2))
    dims = cast(Dims, {k: int(getattr(model, k) or 0) for k in SHAPES})
    dims["hidden"] = dims["hidden"] or dims["heads"] * dims["head_dim"]
    # In the order reports list the facts a source gave.
    facts = ("layers", "heads", "kv_heads", "head_dim", "hidden", "intermediate", "vocab", "dtype", "kv_bits")
    source = dict.fromkeys((*facts, "weight_bits"), "manifest")
    params = int(model.parameter_bytes * 8 / bits) if model.parameter_bytes else None
    source["params"] = "manifest (parameter bytes)" if params is not None else "computed from the manifest's shapes"
    source["sliding_window"] = source["sliding_layers"] = "manifest (no sliding window recorded)"
    dtype = (model.dtype or "").lower().removeprefix("torch.")
    compute = BITS_DTYPE.get(int(DTYPE_BITS.get(dtype, bits)), "bf16")
    return unwindowed(
        dims, params=params, bits=bits, source=source, name=model.name, dtype=compute, max_context=model.max_context
    )


def with_sources(shape: ModelShape, **changes: Any) -> ModelShape:
    """A copy with some facts replaced; ``changes`` maps a fact to (value, source)."""
    src = dict(shape.source)
    values: dict[str, Any] = {}
    for k, (v, where) in changes.items():
        values[k] = v
        src[k] = where
    return replace(shape, source=MappingProxyType(src), **values)
