"""The attribution rule table: data, not if-chains.

Each rule names a category and up to three regular expressions, all of which must match:

* ``kernel``: the device event's name (a CUDA/HIP kernel, ``Memcpy ...``; on CPU-only traces the op);
* ``op``: the name of the host op that launched it (innermost ``cpu_op``);
* ``scope``: any enclosing host span (user annotations, ``nn.Module`` scopes, tracekit's own), by a
  pattern of the annotation vocabulary (``tracekit.annotations.SCOPES``): the loader keeps the Python
  frames those patterns can match, so a scope rule never needs a second edit.

Rules are tried in order; the first match decides, and ``--explain`` prints its name. The order is
the policy: specific attention kernels first, then scopes (a generic GEMM or softmax inside an
attention-core scope is attention), then generic kernel-name families, then ``other``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracekit.annotations import scope as _scope

CATEGORIES: tuple[str, ...] = (
    "attention",
    "kv_cache",
    "gemm",
    "norm",
    "rope",
    "activation",
    "elementwise",
    "sampling",
    "memcpy",
    "memset",
    "communication",
    "other",
)


@dataclass(frozen=True)
class Rule:
    name: str
    category: str
    kernel: re.Pattern[str] | None = None
    op: re.Pattern[str] | None = None
    scope: re.Pattern[str] | None = None
    note: str = ""


def _r(p: str) -> re.Pattern[str]:
    return re.compile(p)


RULES: tuple[Rule, ...] = (
    # --- attention kernels recognised by name, on any vendor -------------------------------------
    Rule(
        "flash-attention",
        "attention",
        kernel=_r(r"flash_fwd|flash_bwd|flash::|pytorch_flash|FlashAttn|flash_attn"),
        note="FlashAttention 1/2/3 and PyTorch's SDPA flash path",
    ),
    Rule(
        "mem-efficient-attention",
        "attention",
        kernel=_r(r"fmha|efficient_attention|mem_eff|cutlassF|cutlassB|AttentionKernel"),
        note="PyTorch SDPA memory-efficient path, xFormers cutlass, CK fmha",
    ),
    Rule("cudnn-attention", "attention", kernel=_r(r"(?i)cudnn.*(sdpa|mha|attn|flash)"), note="cuDNN SDPA"),
    Rule(
        "flashinfer",
        "attention",
        kernel=_r(r"flashinfer|BatchPrefillWith|BatchDecodeWith|SinglePrefillWith|SingleDecodeWith|MergeStates"),
        note="FlashInfer prefill/decode kernels (vLLM, SGLang)",
    ),
    Rule(
        "paged-attention",
        "attention",
        kernel=_r(r"paged_attention|unified_attention|decode_attention"),
        note="vLLM paged attention, unified triton attention",
    ),
    Rule(
        "triton-attention",
        "attention",
        kernel=_r(r"^_?attn_fwd|^_?attn_bwd|_fwd_kernel_stage|_fwd_grouped_kernel|^_fwd_kernel$|context_attention"),
        note="Triton attention (ROCm attn_fwd, SGLang decode/extend, vLLM prefix prefill)",
    ),
    Rule(
        "cpu-sdpa-op",
        "attention",
        kernel=_r(r"^aten::_?scaled_dot_product|^aten::_flash_attention|^aten::_efficient_attention"),
        note="SDPA operators as the work unit on CPU-only traces",
    ),
    # --- KV-cache writes --------------------------------------------------------------------------
    Rule(
        "kv-cache-kernel",
        "kv_cache",
        kernel=_r(r"reshape_and_cache|store_kvcache|copy_blocks|cache_kernel|kv_cache|KVCache"),
        note="engine kernels writing K/V into the cache",
    ),
    # --- scopes: what the work was for, when the kernel name is generic ----------------------------
    Rule(
        "attention-core-scope",
        "attention",
        scope=_scope("tracekit_attention_core"),
        note="tracekit's annotation around scores, softmax and the weighted sum over the cache",
    ),
    Rule(
        "sdpa-op-scope",
        "attention",
        scope=_scope("sdpa_op"),
        note="kernels launched by an SDPA operator",
    ),
    Rule(
        "attention-fn-layout-copy",
        "kv_cache",
        kernel=_r(r"(?i)copy|CatArray|index"),
        scope=_scope("attention_function"),
        note="K/V layout copies (contiguous, repeat_kv) inside an attention function: cache traffic",
    ),
    Rule(
        "hf-attention-fn-scope",
        "attention",
        scope=_scope("attention_function"),
        note="HF transformers / exllamav2 attention functions (eager matmuls, softmax, masking)",
    ),
    Rule("kv-cache-scope", "kv_cache", scope=_scope("tracekit_kv_cache"), note="tracekit's KV-cache write annotation"),
    Rule(
        "eager-softmax-in-attention-module",
        "attention",
        kernel=_r(r"(?i)softmax"),
        scope=_scope("attention_module"),
        note="eager attention: softmax inside an attention module",
    ),
    Rule(
        "norm-scope",
        "norm",
        scope=_scope("norm"),
        note="RMSNorm/LayerNorm module or tracekit norm annotation",
    ),
    Rule(
        "rope-scope",
        "rope",
        scope=_scope("rope"),
        note="rotary embedding helpers",
    ),
    Rule("sampling-scope", "sampling", scope=_scope("tracekit_sampling"), note="tracekit's sampling annotation"),
    Rule(
        "sampling-op",
        "sampling",
        op=_r(r"^aten::(topk|argmax|multinomial|sort|argsort|cumsum)$"),
        note="token selection ops",
    ),
    # --- generic kernel-name families -------------------------------------------------------------
    Rule("memcpy", "memcpy", kernel=_r(r"^Memcpy|^memcpy|CopyDeviceToDevice|CopyHostToDevice")),
    Rule("memset", "memset", kernel=_r(r"^Memset|^memset")),
    Rule(
        "collective",
        "communication",
        kernel=_r(r"(?i)nccl|rccl|all_?reduce|all_?gather|reduce_?scatter|cross_device_reduce|gloo"),
    ),
    Rule(
        "exllamav2-gemm",
        "gemm",
        kernel=_r(r"gemm_half_q_half|q4_matmul|gemm_half_half|fp16_matmul"),
        note="exllamav2 quantized GEMM/GEMV kernels",
    ),
    Rule(
        "gemm",
        "gemm",
        kernel=_r(
            r"(?i)gemm|gemv|^Cijk_|xmma|nvjet|cutlass|cublas|hipblas|matmul|^aten::(mm|addmm|bmm|baddbmm|linear|matmul)$|splitKreduce|wgmma"
        ),
        note="cuBLAS/cuBLASLt/cutlass/nvjet, hipBLASLt Cijk_, CPU matmul ops",
    ),
    Rule(
        "norm-kernel",
        "norm",
        kernel=_r(r"(?i)rms_?norm|layer_?norm|batch_?norm|group_?norm|bn_fw|bn_bw|^aten::native_layer_norm"),
    ),
    Rule("rope-kernel", "rope", kernel=_r(r"(?i)rope|rotary")),
    Rule(
        "activation-kernel",
        "activation",
        kernel=_r(r"(?i)silu|gelu|swiglu|act_and_mul|relu|sigmoid|tanh|^aten::(silu|gelu|relu)"),
    ),
    Rule(
        "sampling-kernel",
        "sampling",
        kernel=_r(r"(?i)topk|argmax|multinomial|radixSort|sampling|gatherTopK|sort_kernel|softmax"),
    ),
    Rule(
        "elementwise",
        "elementwise",
        kernel=_r(
            r"(?i)elementwise|reduce_kernel|CatArray|index|copy|fill|^aten::|pointwise|triton_poi|triton_red|transpose|cast"
        ),
    ),
    Rule("fallback", "other"),
)

RULE_INDEX: dict[str, Rule] = {r.name: r for r in RULES}
