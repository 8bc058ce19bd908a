"""A step's context from the recorded input shapes of its attention operator (``record_shapes``).

HF transformers' ``generate()`` and other eager models write no step annotation that says how
long the context is, but with ``record_shapes=True`` every operator event carries its inputs'
``Input Dims``: the attention operator's key tensor is as long as the KV cache the step reads, its
query as long as the tokens the step feeds. Read per operator family, by its documented layout:

* SDPA (``aten::scaled_dot_product_attention`` and its ``_flash``/``_efficient``/``_cudnn``/CPU
  kernels): query and key are ``[batch, heads, seq, dim]`` (the mask, ``[batch, 1, q, kv]``, gives
  the query's length where HF folds grouped heads into it);
* ATen's ``_flash_attention_forward``/``_efficient_attention_forward`` and flash-attn's
  ``flash_attn::_flash_attn_forward`` op: ``[batch, seq, heads, dim]``. Not
  ``flash_attn_with_kvcache`` (exllamav2, vLLM): its key is the whole cache, its length a tensor's
  values (``cache_seqlens``), which shapes do not record: such a step's context stays unknown;
* eager attention (``aten::matmul`` classified as attention, QKᵀ): ``[batch, heads, q, dim]``
  times ``[batch, heads, dim, kv]``.

KV tokens are batch × the key's length (what attention reads, padding included), query tokens
batch × the query's length. The loader keeps no ``args`` beyond correlation ids, so the shapes are
read here in a second, narrow decode of the file (only ``args["Input Dims"]``), and only when a
step needs them and the trace holds one of these operators.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tracekit.analysis.attribute import Attribution
from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.steps import SHAPE_SOURCES
from tracekit.trace.input_dims import input_args

_BHSD = re.compile(
    r"^aten::(?:scaled_dot_product_attention|_scaled_dot_product_(?:flash|efficient|cudnn)_attention"
    r"|_scaled_dot_product_flash_attention_for_cpu|_scaled_dot_product_attention_math)$"
)
_BSHD = re.compile(
    r"^(?:aten::_flash_attention_forward|aten::_efficient_attention_forward|flash_attn::_flash_attn_forward)$"
)
_EAGER = re.compile(r"^aten::matmul$")


def needs_shapes(result: AnalysisResult) -> bool:
    return any(p.kv_tokens is None and p.source in SHAPE_SOURCES for p in result.phases)


def _candidates(att: Attribution) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], list[str]]:
    """Start times, event positions and layouts of the attention operators, in time order."""
    trace = att.trace
    layout_of: dict[int, str] = {}
    for code, s in enumerate(trace.strings):
        if _BHSD.match(s):
            layout_of[code] = "bhsd"
        elif _BSHD.match(s):
            layout_of[code] = "bshd"
    ts: list[float] = []
    origin: list[int] = []
    layouts: list[str] = []
    if layout_of:
        hit = np.flatnonzero(np.isin(trace.spans.name, list(layout_of)))
        ts += trace.spans.ts[hit].tolist()
        origin += trace.spans.origin[hit].tolist()
        layouts += [layout_of[int(c)] for c in trace.spans.name[hit].tolist()]
    if att.device == "cpu":  # eager attention: the QKᵀ matmul the rule table put in attention
        eager = [c for c, s in enumerate(trace.strings) if _EAGER.match(s)]
        cat = att.categories.index("attention") if "attention" in att.categories else -1
        hit = np.flatnonzero(np.isin(att.name, eager) & (att.category == cat))
        ts += att.ts[hit].tolist()
        origin += att.origin[hit].tolist()
        layouts += ["eager"] * len(hit)
    order = np.argsort(np.asarray(ts, np.float64), kind="stable")
    return np.asarray(ts, np.float64)[order], np.asarray(origin, np.int64)[order], [layouts[i] for i in order]


def _context(dims: Any, layout: str) -> tuple[int, int, int] | None:
    """(requests, query tokens, KV tokens) from an operator's Input Dims, or None."""
    if not isinstance(dims, list) or len(dims) < 2:
        return None
    q, k = dims[0], dims[1]
    if not (isinstance(q, list) and isinstance(k, list) and len(q) == 4 and len(k) == 4):
        return None
    if not all(isinstance(x, int) and x > 0 for x in (*q, *k)):
        return None
    if layout == "bhsd":
        b, nq, nkv = q[0], q[2], k[2]
        # HF folds grouped query heads into the query's length for SDPA on one token
        # ([b, kv_heads, n_rep * q, d]); the mask ([b, 1, q, kv]), when given, keeps the true q.
        mask = dims[3] if len(dims) > 3 else None
        if isinstance(mask, list) and len(mask) == 4 and mask[-1] == nkv and isinstance(mask[-2], int):
            nq = min(nq, mask[-2]) if mask[-2] > 0 else nq
    elif layout == "bshd":
        b, nq, nkv = q[0], q[1], k[1]
    else:
        if q[3] != k[2]:  # not a QKᵀ product ([b, h, q, d] @ [b, h, d, kv])
            return None
        b, nq, nkv = q[0], q[2], k[3]
    if nkv < nq:
        return None
    return b, b * nq, b * nkv


def attention_context(
    att: Attribution, result: AnalysisResult, text: Callable[[], bytes]
) -> dict[int, tuple[int, int, int]]:
    """For each step of ``result.phases`` that needs a context and holds an attention operator
    with recorded shapes: its index -> (requests, query tokens, KV tokens). ``text`` reads the
    trace's JSON (``trace.read.read_text``), called only when some step can use it; a document
    that does not decode gives nothing."""
    ts, origin, layouts = _candidates(att)
    want = [i for i, p in enumerate(result.phases) if p.kv_tokens is None and p.source in SHAPE_SOURCES]
    if not len(ts) or not want:
        return {}
    data = text()
    events = input_args(data)
    if events is None:
        return {}
    out: dict[int, tuple[int, int, int]] = {}
    for i in want:
        p = result.phases[i]
        start, end = p.host_span or (p.start_us, p.start_us + p.span_us)
        lo = int(np.searchsorted(ts, start, side="left"))
        hi = int(np.searchsorted(ts, end, side="right"))
        for j in range(lo, hi):
            pos = int(origin[j])
            args = events[pos] if 0 <= pos < len(events) else None
            got = _context(args.dims, layouts[j]) if args is not None else None
            if got is not None:
                out[i] = got
                break
    return out
