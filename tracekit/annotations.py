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
from collections.abc import Callable
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
    # Mixture-of-experts blocks (HF Mixtral/Qwen2-MoE sparse blocks, DeepSeek MoEGate, vLLM FusedMoE).
    "moe_module": r"^nn\.Module: \w*(?:SparseMoe\w*|MoE\w*|Moe(?:Block|Layer|Gate)\w*|FusedMoE|MoEGate|TopKRouter)(?:_\d+)?$",
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
    steps = [r.pattern.pattern for r in STEP_READERS]
    return re.compile("|".join([r"^nn\.Module: ", *(f"(?:{p})" for p in [*SCOPES.values(), *steps])]))


# --- phases and steps --------------------------------------------------------------------------

# Limits on what one engine step can hold: a count past these is not a step's but a broken or
# hostile annotation, and leaves the step's context unknown (with a note) rather than wrong.
MAX_REQUESTS = 1_000_000
MAX_QUERY_TOKENS = 1_000_000_000
MAX_KV_TOKENS = 1_000_000_000_000


@dataclass(frozen=True)
class PhaseKey:
    """A phase or step annotation, read. ``requests``/``query_tokens``/``kv_tokens`` are what the
    annotation says the step held (None: it does not say); ``source`` names the reader of
    ``STEP_READERS`` that matched; ``note`` says why an annotation that looked like a step's could
    not be read (its context is then None)."""

    phase: str
    step: int | None
    context_tokens: int | None
    requests: int | None = None
    query_tokens: int | None = None
    kv_tokens: int | None = None
    source: str = ""
    note: str | None = None


@dataclass(frozen=True)
class StepReader:
    """One row of the step-pattern table: a name pattern, the function reading a match, the
    engine and version that write it, and where that was confirmed."""

    source: str
    pattern: re.Pattern[str]
    read: Callable[[re.Match[str], str], PhaseKey]
    writes: str


def _bad(source: str, name: str, why: str, phase: str = "step") -> PhaseKey:
    shown = name if len(name) <= 120 else name[:117] + "..."
    return PhaseKey(phase, None, None, source=source, note=f"step annotation {shown!r}: {why}; its context is unknown")


def _checked(source: str, name: str, phase: str, requests: int | None, query: int | None, kv: int | None) -> PhaseKey:
    """A step's key, or the unknown-context key with a note when a count is absurd."""
    for what, value, limit in (
        ("requests", requests, MAX_REQUESTS),
        ("query tokens", query, MAX_QUERY_TOKENS),
        ("KV tokens", kv, MAX_KV_TOKENS),
    ):
        if value is not None and not 0 <= value <= limit:
            return _bad(source, name, f"{what} {value} outside 0..{limit:,}", phase)
    return PhaseKey(phase, None, None, requests, query, kv, source)


def _mix(ctx_requests: int, gen_requests: int) -> str:
    if ctx_requests and gen_requests:
        return "mixed"
    return "prefill" if ctx_requests else "decode" if gen_requests else "step"


def _read_tracekit(m: re.Match[str], name: str) -> PhaseKey:
    fields: dict[str, int] = {}
    phase = m.group(1)
    for part in m.group(2).split(","):
        k, _, v = part.partition("=")
        if v.lstrip("-").isascii() and v.lstrip("-").isdigit():
            fields[k.strip()] = int(v)
        elif k.strip() == "ctx":
            return _bad("tracekit", name, f"ctx={v!r} is not a count", phase)
    step = fields.get("step") if phase == "decode" else fields.get("chunk")
    ctx = fields.get("ctx")
    query = 1 if phase == "decode" else fields.get("tokens")
    key = _checked("tracekit", name, phase, 1, query, ctx)
    if key.note is not None or ctx is None:
        return PhaseKey(phase, step, None, source="tracekit", note=key.note)
    return PhaseKey(phase, step, ctx, 1, query, ctx, "tracekit")


def _read_vllm_native(m: re.Match[str], name: str) -> PhaseKey:
    rc, tc, rg, tg = (int(m.group(i)) for i in (1, 2, 4, 5))
    return _checked("vllm", name, _mix(rc, rg), rc + rg, tc + tg, None)


def _read_vllm_detailed(m: re.Match[str], name: str) -> PhaseKey:
    total, rc, cq, ck, cqq, _, rg, gq, gk, gqq, _ = (int(g) for g in m.groups())
    phase = _mix(rc, rg)
    for what, requests, q, k, qq in (("context", rc, cq, ck, cqq), ("generation", rg, gq, gk, gqq)):
        if (requests == 0) != (q == 0) or k < q or qq < q:
            return _bad(
                "vllm", name, f"its {what} counts disagree (requests {requests}, sq {q}, sk {k}, sqsq {qq})", phase
            )
    if total != cq + gq:
        return _bad("vllm", name, f"{total} scheduled tokens but sq {cq} + {gq}", phase)
    return _checked("vllm", name, phase, rc + rg, cq + gq, ck + gk)


_SGLANG_PHASES = {"EXTEND": "prefill", "DECODE": "decode", "MIXED": "mixed"}


def _read_sglang(m: re.Match[str], name: str) -> PhaseKey:
    mode = m.group(1)
    phase = _SGLANG_PHASES.get(mode, "step")
    fields: dict[str, int] = {}
    for part in m.group(2).split():
        k, eq, v = part.partition("=")
        if not eq or not (v.isascii() and v.isdigit()):
            return _bad("sglang", name, f"field {part!r} is not name=count", phase)
        fields[k] = int(v)
    if "bs" not in fields:
        return _bad("sglang", name, "it has no bs=", phase)
    bs = fields["bs"]
    query: int | None = None
    kv: int | None = None
    if "c_sq" in fields or "g_sq" in fields:  # the detailed form: per-phase sums
        query = fields.get("c_sq", 0) + fields.get("g_sq", 0)
        if "c_sk" in fields or "g_sk" in fields:
            kv = fields.get("c_sk", 0) + fields.get("g_sk", 0)
            if kv < query:
                return _bad("sglang", name, f"{kv} KV tokens for {query} query tokens", phase)
    elif mode == "EXTEND" and "toks" in fields:
        query = fields["toks"]
    # A plain DECODE step's query tokens are bs only without speculative decoding (EAGLE/MTP
    # decode num_tokens_per_req per request under the same mode): the annotation cannot tell.
    return _checked("sglang", name, phase, bs, query, kv)


def _read_profiler_step(m: re.Match[str], name: str) -> PhaseKey:
    return PhaseKey("step", int(m.group(1)), None, source="profiler_step")


def _read_unnumbered(source: str) -> Callable[[re.Match[str], str], PhaseKey]:
    def read(m: re.Match[str], name: str) -> PhaseKey:
        return PhaseKey("step", None, None, source=source)

    return read


_N = r"([0-9]{1,19})"  # a count in ASCII digits; the range check decides whether it is plausible
# The step-pattern table: every step annotation tracekit reads, one row each, most specific first.
STEP_READERS: tuple[StepReader, ...] = (
    StepReader(
        "tracekit",
        re.compile(r"^tracekit::(prefill|decode)\[([^\]]*)\]$"),
        _read_tracekit,
        "tracekit capture: prefill[chunk,ctx,tokens], decode[step,ctx] (ctx = tokens attended over)",
    ),
    StepReader(
        "vllm",
        re.compile(
            rf"^execute_{_N}_context_{_N}\(sq{_N}sk{_N}sqsq{_N}sqsk{_N}\)"
            rf"_generation_{_N}\(sq{_N}sk{_N}sqsq{_N}sqsk{_N}\)$"
        ),
        _read_vllm_detailed,
        "vLLM v1 Worker.annotate_profile with ProfilerConfig.detailed_trace_annotation (TraceLens's vllm_patches "
        "for v0.14.0-v0.25.0), and SGLang with TraceLens's scheduler_profiler_mixin patch: "
        "execute_{tokens}_context_{requests}(sq..sk..sqsq..sqsk..)_generation_{requests}(...)",
    ),
    StepReader(
        "vllm",
        re.compile(rf"^execute_context_{_N}\({_N}(_[0-9]+)?\)_generation_{_N}\({_N}(_[0-9]+)?\)$"),
        _read_vllm_native,
        "vLLM v1 vllm/v1/worker/gpu_worker.py Worker.annotate_profile (VLLM_TORCH_PROFILER_DIR or --profiler-config): "
        "execute_context_{requests}({tokens})_generation_{requests}({tokens}); a second _number (Σq²) is accepted",
    ),
    StepReader(
        "sglang",
        re.compile(r"^step\[([A-Z_]+)((?: [^\]\s]*)*)\]$"),
        _read_sglang,
        "SGLang model_runner.py _build_step_span_name (0.5.13+): step[EXTEND bs=N toks=M], step[MODE bs=N]; "
        "c_sq/c_sk/g_sq/g_sk... with TraceLens's step_span_utils patch (detailed_annotations)",
    ),
    StepReader(
        "profiler_step", re.compile(r"^ProfilerStep#([0-9]+)$"), _read_profiler_step, "torch.profiler schedule steps"
    ),
    # vLLM v1's GPUModelRunner wraps each step's model call in "gpu_model_runner: forward" (beside
    # ": preprocess" and ": postprocess"); "execute_model" covers older workers; SGLang's scheduler
    # frames. None carries the step's context.
    StepReader(
        "engine",
        re.compile(
            r"^(?:execute_model|gpu_model_runner: forward|vllm::execute_model|forward_batch_generation|run_batch)$"
        ),
        _read_unnumbered("engine"),
        "vLLM v1 record_function scopes; SGLang scheduler functions",
    ),
    # A model's whole forward: HF transformers' *ForCausalLM (generate() calls it once per token)
    # as an nn.Module frame (with_stack), and exllamav2's ExLlamaV2.forward Python frame. Their
    # context comes from the attention operator's Input Dims (record_shapes), read apart.
    StepReader(
        "forward",
        re.compile(
            r"^nn\.Module: \w+(?:ForCausalLM|LMHeadModel|ForConditionalGeneration)(?:_\d+)?$"
            r"|exllamav2/model\.py\(\d+\): forward$"
        ),
        _read_unnumbered("forward"),
        "HF transformers model classes (with_stack), exllamav2 model.py ExLlamaV2.forward",
    ),
)

# Engine step annotations that nest (SGLang with TraceLens's patch writes execute_... around
# step[...] for the same step): the outermost is the step and takes the context of those inside.
MERGING_SOURCES = frozenset({"vllm", "sglang"})
# A model forward or an engine scope inside an engine's (or tracekit's) step annotation is part
# of that step, not a step of its own; inside a ProfilerStep it is the finer step (generate()
# runs many forwards in one profiler step).
ENCLOSING_SOURCES = frozenset({"vllm", "sglang", "tracekit", "engine"})
NESTED_SOURCES = MERGING_SOURCES | {"engine", "forward"}


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
    """The phase or step a span name denotes, or None; cached because span names repeat a lot."""
    for reader in STEP_READERS:
        m = reader.pattern.match(name)
        if m:
            return reader.read(m, name)
    if name.startswith(("execute_context_", "execute_", "step[")) and _LOOKS_LIKE_STEP.match(name):
        return _bad("vllm" if name.startswith("execute_") else "sglang", name, "it does not parse")
    return None


# Names that begin like an engine's step annotation but match no reader (a field missing, a
# negative number): still a step, with its context unknown and a note.
_LOOKS_LIKE_STEP = re.compile(r"^(?:execute_(?:-?[0-9]+_)?context_|step\[[A-Z_]+[ \]])")


def merge_context(outer: PhaseKey, inner: PhaseKey) -> PhaseKey:
    """``outer`` with each count it lacks taken from ``inner`` (the same step, annotated twice)."""
    if outer.note is not None or inner.note is not None:
        return PhaseKey(outer.phase, outer.step, None, source=outer.source, note=outer.note or inner.note)
    return PhaseKey(
        outer.phase if outer.phase != "step" else inner.phase,
        outer.step,
        outer.context_tokens,
        outer.requests if outer.requests is not None else inner.requests,
        outer.query_tokens if outer.query_tokens is not None else inner.query_tokens,
        outer.kv_tokens if outer.kv_tokens is not None else inner.kv_tokens,
        outer.source,
    )
