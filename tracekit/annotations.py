"""The annotation vocabulary: what host span names mean, in one place (pure Python, the ground floor).

Three parties read and write these names and all take them from here:

* capture writes ``tracekit::prefill[chunk=0,ctx=512,tokens=512]``, ``tracekit::decode[step=3,ctx=515]``
  and the layer-part scopes (``tracekit::attention_core`` ...) into traces;
* analysis parses phases and steps back (``parse_phase``: tracekit's own, ``ProfilerStep#N``, the step
  annotations engines write) and matches enclosing scopes by name (``SCOPES``, used by the rule table);
* the loader keeps only the Python frames (``python_function`` events, from ``with_stack``) whose
  names some scope pattern can match (``python_frame_filter``), so a new scope rule never needs a
  second edit elsewhere.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

PREFIX = "tracekit::"
ATTENTION_CORE = "tracekit::attention_core"  # scores, softmax, weighted sum over the cache
KV_CACHE_WRITE = "tracekit::kv_cache_write"
NORM = "tracekit::norm"
ROPE = "tracekit::rope"
LM_HEAD = "tracekit::lm_head"
SAMPLING = "tracekit::sampling"
WARMUP = "tracekit::profiler_warmup"

# Scope patterns: what an enclosing host span (record_function annotation, operator, nn.Module or
# Python frame) says about the device work under it. Rules refer to these by key. Module frames
# read ``nn.Module: Name_N``; Python frames ``path/file.py(line): function``.
SCOPES: dict[str, str] = {
    "tracekit_attention_core": r"^" + re.escape(ATTENTION_CORE),
    "sdpa_op": r"^aten::_?scaled_dot_product|^aten::_flash_attention|^aten::_efficient_attention",
    # Functions that are the attention core and nothing else: HF transformers' attention
    # interface (integrations/*_attention.py), GPT-2-style ``_attn``, exllamav2's ``_attn_*`` paths.
    "attention_function": r"(?:eager|sdpa|flash|flex|paged|sdpa_paged|flash_paged)_attention_forward$"
    r"|\.py\(\d+\): (?:_attn|_attn_(?:flash|xformers|torch)|_upcast_and_reordered_attn|attention)$",
    # Blocks that hold the core and more (projections, rotary, norms): modules whose class name ends
    # in Attention/Attn (not UNet blocks such as CrossAttnDownBlock2D) and record_function labels
    # such as "self_attn" or "layers.3.attention".
    "attention_module": r"^nn\.Module: \w*(?:Attention|Attn)\d*(?:_\d+)?$"
    r"|^(?i:(?:[\w.]*[./:])?(?:self_|cross_|multi_?head_)?(?:attention|attn))$",
    # Q/K/V/output projections inside an attention block (HF's GPT-2 Conv1D is a linear layer).
    "linear_module": r"^nn\.Module: (?:\w*Linear\w*|Conv1D(?:_\d+)?)$",
    "tracekit_kv_cache": r"^tracekit::kv_cache",
    "norm": r"^tracekit::norm|^nn\.Module: \w*(RMSNorm|LayerNorm)|(?i:rms_?norm)",
    "rope": r"^tracekit::rope|apply_rotary|RotaryEmbedding|rotary_emb",
    "tracekit_sampling": r"^" + re.escape(SAMPLING),
    # Convolution operators (forward, backward-data, backward-weight; cuDNN, MIOpen, oneDNN, CPU)
    # and convolution modules (not HF's Conv1D, a linear layer). Operators, not autograd nodes:
    # activation checkpointing recomputes whole forward segments under some backward node.
    "convolution": r"^aten::(?:_?convolution\w*|conv\w+|cudnn_convolution\w*|miopen_\w*convolution\w*"
    r"|_?mkldnn_convolution\w*|_?slow_conv\w*|thnn_conv\w*|_nnpack_spatial_convolution\w*|mps_convolution\w*)$"
    r"|^nn\.Module: (?:Lazy)?Conv(?:Transpose)?[123]d(?:_\d+)?$",
    # Activation operators and modules: ReLU runs as clamp/threshold kernels with generic names.
    "activation": r"^aten::(?:relu6?|hardtanh|threshold|leaky_relu|gelu|silu|sigmoid|tanh|elu|mish|hardswish"
    r"|hardsigmoid|softplus)_?(?:_backward)?$"
    r"|^nn\.Module: (?:ReLU6?|LeakyReLU|GELU|SiLU|Sigmoid|Tanh|ELU|Mish|Hardswish|Softplus|\w*Activation)(?:_\d+)?$",
}


def scope(key: str) -> re.Pattern[str]:
    """The compiled scope pattern named ``key`` (a KeyError names a scope that does not exist)."""
    return _compiled(key)


@functools.cache
def _compiled(key: str) -> re.Pattern[str]:
    return re.compile(SCOPES[key])


@functools.lru_cache(maxsize=1)
def python_frame_filter() -> re.Pattern[str]:
    """Python frames worth keeping: those some scope pattern matches, plus every ``nn.Module``
    frame (the module tree, for ``--explain`` and future scope rules on module names)."""
    return re.compile("|".join([r"^nn\.Module: ", *(f"(?:{p})" for p in SCOPES.values())]))


# --- phases and steps --------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseKey:
    phase: str
    step: int | None
    context_tokens: int | None


_TK_PHASE = re.compile(r"^tracekit::(prefill|decode)\[([^\]]*)\]$")
_FOREIGN_STEPS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^ProfilerStep#(\d+)$"), "step"),
    # vLLM v1's GPUModelRunner wraps each step's model call in "gpu_model_runner: forward" (beside
    # ": preprocess" and ": postprocess"; upstream EngineCore.step has no enclosing annotation), so
    # that is the step; "execute_model" covers older workers. The SGLang names are unverified.
    (re.compile(r"^(?:execute_model|gpu_model_runner: forward|vllm::execute_model)$"), "step"),
    (re.compile(r"^(?:forward_batch_generation|run_batch)$"), "step"),
)


def format_annotation(phase: str, **fields: int) -> str:
    """The annotation name tracekit writes for a phase (the inverse of ``parse_phase``)."""
    inner = ",".join(f"{k}={v}" for k, v in fields.items())
    return f"{PREFIX}{phase}[{inner}]"


def prefill(chunk: int, ctx: int, tokens: int) -> str:
    """Annotation for one prefill chunk; ``ctx`` is the context length once the chunk is in."""
    return format_annotation("prefill", chunk=chunk, ctx=ctx, tokens=tokens)


def decode(step: int, ctx: int) -> str:
    """Annotation for one decode step; ``ctx`` is the number of tokens the step attends over."""
    return format_annotation("decode", step=step, ctx=ctx)


@functools.lru_cache(maxsize=65536)
def parse_phase(name: str) -> PhaseKey | None:
    """The phase a span name denotes, or None; cached because span names repeat a lot."""
    m = _TK_PHASE.match(name)
    if m:
        fields: dict[str, int] = {}
        for part in m.group(2).split(","):
            k, _, v = part.partition("=")
            if v.lstrip("-").isdigit():
                fields[k.strip()] = int(v)
        phase = m.group(1)
        step = fields.get("step") if phase == "decode" else fields.get("chunk")
        return PhaseKey(phase, step, fields.get("ctx"))
    for pat, phase in _FOREIGN_STEPS:
        m = pat.match(name)
        if m:
            step = int(m.group(1)) if m.groups() and m.group(1) and m.group(1).isdigit() else None
            return PhaseKey(phase, step, None)
    return None
