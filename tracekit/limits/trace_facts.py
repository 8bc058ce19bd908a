"""What a trace itself says about the limits: its device's name, the model facts its recorded input
shapes give (``record_shapes``), and the bytes and FLOPs of each kernel a GEMM or attention operator
with shapes launched. Runs in the analyze task (beside the attribution), so only these few numbers
travel back to the driver.

The loader keeps no ``args`` beyond correlation ids, so the shapes are read here in a second,
narrow decode of the file (``Input Dims`` and ``Input type`` only), and only when the trace holds
an operator this module reads. Operators and their documented layouts:

* GEMMs: ``aten::mm`` [M,K]·[K,N], ``aten::addmm`` (bias, [M,K], [K,N]), ``aten::bmm``
  [B,M,K]·[B,K,N], ``aten::linear`` [..., K] with weight [N,K], ``aten::matmul`` [...,M,K]·[K,N],
  and vendor GEMM operators whose two inputs are [M,K] and weight [N,K] (``aiter::gemm_a16w16``);
* attention: SDPA ``[batch, heads, seq, dim]``, flash-attn ``[batch, seq, heads, dim]``, and paged /
  varlen operators ``q [tokens, heads, dim]`` with a cache ``[slots, kv_heads, dim]``
  (``aiter::mha_batch_prefill``, vLLM/SGLang ``*attention*`` ops).

A kernel takes the work of the innermost such operator above its launch; an operator that
launches several kernels gives its work to the longest, so nothing is counted twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from tracekit.analysis.attribute import Attribution
from tracekit.analysis.result import AnalysisResult
from tracekit.capture.presets import Dims
from tracekit.limits.model import ModelShape, unwindowed
from tracekit.trace.input_dims import InputArgs, input_args
from tracekit.trace.tree import nearest_marked

_GEMM = re.compile(r"^(?:aten::(?:mm|addmm|bmm|linear|matmul|_scaled_mm)|\w+::\w*gemm\w*)$")
_BHSD = re.compile(
    r"^aten::(?:scaled_dot_product_attention|_scaled_dot_product_(?:flash|efficient|cudnn)_attention"
    r"|_scaled_dot_product_flash_attention_for_cpu|_scaled_dot_product_attention_math)$"
)
_BSHD = re.compile(r"^(?:aten::_flash_attention_forward|aten::_efficient_attention_forward|flash_attn::\w*fwd\w*)$")
_PAGED = re.compile(r"^\w+::\w*(?:mha|attention|attn)\w*$")

# Torch's names for element types in ``Input type``, as the dtype families of the device table.
TYPE_DTYPE = {
    "float": "fp32",
    "c10::BFloat16": "bf16",
    "c10::Half": "fp16",
    "c10::Float8_e4m3fn": "fp8",
    "c10::Float8_e5m2": "fp8",
    "c10::Float8_e4m3fnuz": "fp8",
    "c10::Float8_e5m2fnuz": "fp8",
    "signed char": "int8",
    "c10::qint8": "int8",
}
DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0}


class _Props(msgspec.Struct, gc=False):
    name: Any = ""
    totalGlobalMem: Any = 0  # noqa: N815 (the file's keys)
    computeMajor: Any = -1  # noqa: N815
    computeMinor: Any = -1  # noqa: N815
    numSms: Any = 0  # noqa: N815


class _PropsDoc(msgspec.Struct, gc=False):
    deviceProperties: Any = None  # noqa: N815


def _unnamed_device(data: bytes) -> str:
    """The table key of a device a trace describes without a name (compute capability, SMs or
    CUs, memory), or ""."""
    from tracekit.limits.devices import device_from_props

    try:
        props = msgspec.json.decode(data, type=_PropsDoc).deviceProperties if data.lstrip()[:1] == b"{" else None
        first = msgspec.convert(props[0], _Props) if isinstance(props, list) and props else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""
    if first is None:
        return ""
    values = (first.computeMajor, first.computeMinor, first.numSms, first.totalGlobalMem)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return ""
    dev = device_from_props(*values)
    return "" if dev is None else dev.key


@dataclass
class KernelWork:
    """Summed over a kernel's instances that had an operator with shapes above them."""

    bytes: float = 0.0
    flops: float = 0.0
    time_us: float = 0.0
    count: int = 0
    dtype: str = ""
    kind: str = ""  # "gemm" | "attention"


@dataclass
class TraceFacts:
    """The limits-related facts of one trace (small: a few numbers and one row per kernel name)."""

    device_name: str = ""
    device_key: str = ""  # the table's device for an unnamed deviceProperties entry
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    dtype: str | None = None
    layers: int | None = None  # attention operators in one step
    step_weight_bytes: float | None = None  # weight matrices of the GEMM operators in one step
    hidden: int | None = None
    sources: dict[str, str] = field(default_factory=dict)
    kernels: dict[str, KernelWork] = field(default_factory=dict)
    # The GEMM operators' work in each step (index into the result's phases): (bytes, FLOPs),
    # from their Input Dims; what the step's GEMMs did, where the model's count is an estimate.
    step_gemm: dict[int, tuple[float, float]] = field(default_factory=dict)


def _ints(x: Any) -> list[int] | None:
    if isinstance(x, list) and x and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in x):
        return x
    return None


def gemm_shape(name: str, dims: Any) -> tuple[int, int, int, int] | None:
    """(batch, M, N, K) of a GEMM operator's Input Dims, or None where they are not a product."""
    if not isinstance(dims, list):
        return None
    ops = [_ints(d) for d in dims]
    if name in ("aten::mm",) and len(ops) >= 2 and ops[0] and ops[1] and len(ops[0]) == 2 == len(ops[1]):
        (m, k), (k2, n) = ops[0], ops[1]
        return (1, m, n, k) if k == k2 else None
    if name == "aten::addmm" and len(ops) >= 3 and ops[1] and ops[2] and len(ops[1]) == 2 == len(ops[2]):
        (m, k), (k2, n) = ops[1], ops[2]
        return (1, m, n, k) if k == k2 else None
    if name == "aten::bmm" and len(ops) >= 2 and ops[0] and ops[1] and len(ops[0]) == 3 == len(ops[1]):
        (b, m, k), (b2, k2, n) = ops[0], ops[1]
        return (b, m, n, k) if k == k2 and b == b2 else None
    if name == "aten::matmul" and len(ops) >= 2 and ops[0] and ops[1] and len(ops[1]) == 2:
        k2, n = ops[1]
        k = ops[0][-1]
        return (1, math.prod(ops[0][:-1]), n, k) if k == k2 else None
    if len(ops) >= 2 and ops[0] and ops[1] and len(ops[1]) == 2:  # linear and vendor GEMMs: weight [N, K]
        n, k = ops[1]
        return (1, math.prod(ops[0][:-1]), n, k) if ops[0][-1] == k else None
    return None


def attention_shape(name: str, dims: Any) -> tuple[int, int, int] | None:
    """(heads, kv heads, head dim) from an attention operator's query and key Input Dims."""
    if not isinstance(dims, list) or len(dims) < 2:
        return None
    q, k = _ints(dims[0]), _ints(dims[1])
    if q is None or k is None:
        return None
    if _BHSD.match(name) and len(q) == 4 == len(k):
        heads, kv, d = q[1], k[1], q[3]
    elif _BSHD.match(name) and len(q) == 4 == len(k):
        heads, kv, d = q[2], k[2], q[3]
    elif len(q) == 3 == len(k):  # paged / varlen: q [tokens, heads, dim], cache [slots, kv heads, dim]
        heads, kv, d = q[1], k[1], q[2]
    else:
        return None
    if k[-1] != d or kv > heads or heads % kv:
        return None
    return heads, kv, d


def _dtype(types: Any) -> str | None:
    if isinstance(types, list) and types and isinstance(types[0], str):
        return TYPE_DTYPE.get(types[0])
    return None


def trace_facts(att: Attribution, result: AnalysisResult, text: Callable[[], bytes]) -> TraceFacts:
    """The facts of one attributed trace. ``text`` reads its JSON, called only when it holds a
    GEMM or attention operator this module reads."""
    trace = att.trace
    facts = TraceFacts(device_name=trace.device_names[0] if trace.device_names else "")
    read: list[bytes] = []

    def once() -> bytes:
        if not read:
            read.append(text())
        return read[0]

    if not facts.device_name.strip() and trace.kind == "gpu":
        facts.device_key = _unnamed_device(once())
    kinds: dict[int, str] = {}
    for code, s in enumerate(trace.strings):
        if _GEMM.match(s):
            kinds[code] = "gemm"
        elif _BHSD.match(s) or _BSHD.match(s) or _PAGED.match(s):
            kinds[code] = "attention"
    if not kinds or not len(trace.spans):
        return facts
    marked = np.isin(trace.spans.name, list(kinds))
    if not marked.any():
        return facts
    data = once()
    events = input_args(data)
    if events is None:
        return facts
    strings = trace.strings
    ops = np.flatnonzero(marked)
    # An operator inside another of its kind (aten::linear > aten::matmul > aten::mm; a profiler
    # wrapper around aiter::mha_batch_prefill) is the same work: model facts count outermost ones.
    kind_of = np.array([kinds.get(int(c), "") for c in trace.spans.name[ops]])
    nested = np.zeros(len(trace.spans), bool)
    for kind in ("gemm", "attention"):
        mine = np.zeros(len(trace.spans), bool)
        mine[ops[kind_of == kind]] = True
        parent = trace.parent
        up = np.where(parent >= 0, parent, 0)
        above = nearest_marked(parent, mine)[up]
        nested |= mine & (parent >= 0) & (above >= 0)

    def args(span: int) -> InputArgs | None:
        pos = int(trace.spans.origin[span])
        return events[pos] if 0 <= pos < len(events) else None

    # Work and dtype of each marked operator with usable shapes.
    work: dict[int, tuple[float, float, str, str]] = {}
    att_ops: list[tuple[float, int, tuple[int, int, int], str | None]] = []
    gemm_ops: list[tuple[float, float, str | None, int]] = []  # (ts, weight elements, dtype, K)
    outer_work: list[tuple[float, float, float]] = []  # (ts, bytes, FLOPs) of the outermost GEMM operators
    for span in ops.tolist():
        a = args(span)
        if a is None:
            continue
        name = strings[int(trace.spans.name[span])]
        dtype = _dtype(a.types)
        elem = DTYPE_BYTES.get(dtype or "", 2.0)
        if kinds[int(trace.spans.name[span])] == "gemm":
            g = gemm_shape(name, a.dims)
            if g is None:
                continue
            b, m, n, k = g
            work[span] = (b * (m * k + k * n + m * n) * elem, 2.0 * b * m * n * k, dtype or "", "gemm")
            if not nested[span]:
                gemm_ops.append((float(trace.spans.ts[span]), float(k * n * b), dtype, k))
                outer_work.append((float(trace.spans.ts[span]), work[span][0], work[span][1]))
        else:
            heads = attention_shape(name, a.dims)
            if heads is None or nested[span]:
                continue
            att_ops.append((float(trace.spans.ts[span]), span, heads, dtype))
    _model_facts(facts, result, att_ops, gemm_ops, trace, strings)
    for i, p in enumerate(result.phases):
        if p.host_span is None:
            continue
        start, end = p.host_span
        inside = [(b, f) for ts, b, f in outer_work if start <= ts <= end]
        if inside:
            facts.step_gemm[i] = (sum(b for b, _ in inside), sum(f for _, f in inside))
    _kernel_work(facts, att, marked, work)
    return facts


def _model_facts(
    facts: TraceFacts,
    result: AnalysisResult,
    att_ops: list[tuple[float, int, tuple[int, int, int], str | None]],
    gemm_ops: list[tuple[float, float, str | None, int]],
    trace: Any,
    strings: list[str],
) -> None:
    """Heads, KV heads, head dim and dtype from the first attention operator; layers and the
    weight bytes of a step from the operators inside the first step that holds them."""
    if att_ops:
        _, span, (heads, kv, d), dtype = att_ops[0]
        op = strings[int(trace.spans.name[span])]
        facts.heads, facts.kv_heads, facts.head_dim, facts.dtype = heads, kv, d, dtype
        src = f"trace shapes ({op} Input Dims)"
        facts.sources.update(heads=src, kv_heads=src, head_dim=src)
        if dtype:
            facts.sources["dtype"] = f"trace shapes ({op} Input type)"
        if gemm_ops:  # the first projection of a layer reads the hidden state: its K is the hidden size
            facts.hidden = gemm_ops[0][3]
            facts.sources["hidden"] = "trace shapes (the first GEMM operator's K)"
        else:
            facts.hidden = heads * d
            facts.sources["hidden"] = "trace shapes (heads x head dim)"
    spans = [p.host_span for p in result.phases if p.host_span is not None]
    for start, end in spans:
        n_att = sum(1 for ts, *_ in att_ops if start <= ts <= end)
        if n_att and facts.layers is None:
            facts.layers = n_att
            facts.sources["layers"] = "trace shapes (attention operators in one step)"
        weights = [(w, dt) for ts, w, dt, _ in gemm_ops if start <= ts <= end]
        if weights and facts.step_weight_bytes is None:
            facts.step_weight_bytes = sum(w * DTYPE_BYTES.get(dt or "", 2.0) for w, dt in weights)
            facts.sources["params"] = "trace shapes (GEMM weight matrices in one step)"
        if facts.layers is not None and facts.step_weight_bytes is not None:
            break


def _kernel_work(
    facts: TraceFacts, att: Attribution, marked: Any, work: dict[int, tuple[float, float, str, str]]
) -> None:
    if not work or not len(att):
        return
    trace = att.trace
    op_of = nearest_marked(trace.parent, marked)
    node = att.node
    has = node >= 0
    op = np.full(len(node), -1, np.int64)
    op[has] = op_of[node[has]]
    # One kernel per operator takes its work: the longest (split-K reductions, casts take none).
    best: dict[int, int] = {}
    for i in np.flatnonzero(op >= 0).tolist():
        o = int(op[i])
        if o in work and (o not in best or att.time[i] > att.time[best[o]]):
            best[o] = i
    strings = trace.strings
    for o, i in best.items():
        b, f, dtype, kind = work[o]
        name = strings[int(att.name[i])]
        kw = facts.kernels.setdefault(name, KernelWork(dtype=dtype, kind=kind))
        kw.bytes += b
        kw.flops += f
        kw.time_us += float(att.time[i])
        kw.count += 1


def shape_from_facts(facts: TraceFacts) -> ModelShape | None:
    """The model facts a trace's shapes give, or None where layers, heads, KV heads or head dim
    are missing. Weights: the GEMM weight matrices of one step (all of them read once a step)."""
    if not (facts.layers and facts.heads and facts.kv_heads and facts.head_dim):
        return None
    dtype = facts.dtype or "bf16"
    bits = 8 * DTYPE_BYTES.get(dtype, 2.0)
    src = dict(facts.sources)
    if "dtype" not in src:
        src["dtype"] = "assumed bf16 (the attention operator records no Input type)"
    src["kv_bits"] = src["weight_bits"] = src["dtype"] + " (cache and weights assumed in the attention dtype)"
    params = int((facts.step_weight_bytes or 0.0) * 8 / bits)
    if not facts.step_weight_bytes:
        src["params"] = "unknown (no GEMM operator with shapes in a step): weights left out of step bytes"
    for k in ("intermediate", "vocab"):
        src[k] = "unknown (not recorded in the trace)"
    src["sliding_window"] = src["sliding_layers"] = "trace shapes (none seen; pass --model-config for sliding windows)"
    dims = Dims(
        layers=facts.layers,
        hidden=facts.hidden or facts.heads * facts.head_dim,
        heads=facts.heads,
        kv_heads=facts.kv_heads,
        head_dim=facts.head_dim,
        intermediate=0,
        vocab=0,
    )
    return unwindowed(
        dims,
        params=params,
        bits=bits,
        source=src,
        name="from trace shapes",
        dtype=dtype if dtype in ("fp32", "bf16", "fp16", "fp8") else "bf16",
        tied=True,  # the GEMM weights seen are exactly those read: no embedding to take out
    )
