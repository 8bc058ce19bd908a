"""The attribution rule table: data, not if-chains.

Each rule names a category and up to four conditions, all of which must hold:

* ``ident``: the kernel's own identity (``kernel_id.identity``: its qualified function name, and
  for wrapper kernels the class they instantiate), never its template arguments or parameter
  types; on CPU-only traces the operator's name;
* ``kernel``: the device event's full name as printed (``Memcpy HtoD ...``, template flags);
* ``op``: the name of the host op that launched it (innermost ``cpu_op``);
* ``scope``/``outside``: a pattern key of ``tracekit.annotations.SCOPES`` that some enclosing host
  span must (or no enclosing span may) match; the loader keeps the Python frames those patterns
  can match, so a scope rule never needs a second edit.

Rules are tried in order; the first match decides, and ``--explain`` prints its name and note.
The order is the policy: copies and fills, then kernels that say what they are (attention, KV
cache, convolution), then what launched them (operators, scopes: a generic GEMM or softmax in an
attention core is attention), then generic kernel-name families, then ``other``. Kernels replayed
from CUDA/HIP graphs and kernels without a launch in the trace are classified by name alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CATEGORIES: tuple[str, ...] = (
    "attention",
    "kv_cache",
    "gemm",
    "convolution",
    "norm",
    "rope",
    "activation",
    "elementwise",
    "sampling",
    "moe_routing",
    "memcpy",
    "memset",
    "communication",
    "other",
)


@dataclass(frozen=True)
class Rule:
    name: str
    category: str
    ident: re.Pattern[str] | None = None
    kernel: re.Pattern[str] | None = None
    op: re.Pattern[str] | None = None
    scope: str | None = None
    outside: str | None = None
    note: str = ""


def _r(p: str) -> re.Pattern[str]:
    return re.compile(p)


_NB = r"(?<![A-Za-z])"  # mangled names put a length digit before each identifier, so no \b
_LAYOUT_OPS = r"^aten::(?:copy_|_to_copy|clone|contiguous|cat|stack|index_select|repeat_interleave)$"

RULES: tuple[Rule, ...] = (
    # --- copies and fills: what the runtime says they are -----------------------------------------
    Rule(
        "memcpy",
        "memcpy",
        kernel=_r(r"^Memcpy|^memcpy|CopyDeviceToDevice|CopyHostToDevice"),
        note="CUPTI/roctracer memcpy records; memcpy32_post is a CUDA-graph memcpy node (vLLM)",
    ),
    Rule("memset", "memset", kernel=_r(r"^Memset|^memset"), note="CUPTI/roctracer memset records"),
    # --- KV-cache writes, by the writer's own name (before attention: FlashInfer/CK writers say KVCache)
    Rule(
        "kv-cache-kernel",
        "kv_cache",
        ident=_r(
            r"reshape_and_cache|concat_and_cache_mla|store_kvcache|set_(?:mla_)?kv_buffer_kernel|fused_rope_store_kernel"
            r"|Append(?:Paged)?KV(?:Mla)?CacheKernel|QuantizeAppendPagedKVCache|FmhaFwdAppendKVKernel|UpdateKVCache"
            r"|(?:q_to_fp16|fp16_to_q)_kv(?:_paged)?_kernel|^update_cache_kernel$|^fp(?:16_to_fp8|8_to_fp16)_kernel$"
            r"|copy_blocks|swap_blocks"
        ),
        note="vLLM csrc/cache_kernels.cu, FlashInfer page.cuh/pos_enc.cuh, SGLang memory_pool.py, CK "
        "fmha_fwd_appendkv, TRT-LLM applyBiasRopeUpdateKVCache, exllamav2 cache.cu",
    ),
    # --- attention kernels, by their own identifier, on any vendor ----------------------------------
    Rule(
        "flash-attention",
        "attention",
        ident=_r(_NB + r"flash_(?:fwd|bwd)_\w*kernel\b|flash::prepare_varlen_num_blocks_kernel"),
        note="FlashAttention 2 (flash_fwd_launch_template.h), PyTorch SDPA pytorch_flash::, FlashMLA flash_fwd_*mla*",
    ),
    Rule(
        "flash-attention-3-4",
        "attention",
        ident=_r(r"FlashAttn(?:Fwd|Bwd)\w*|FlashAttention(?:Forward|Backward)\w*"),
        note="FA3 hopper/flash_*_kernel_sm{80,90}.h classes in cutlass::device_kernel; FA4 flash_attn/cute classes",
    ),
    Rule(
        "mem-efficient-attention",
        "attention",
        ident=_r(
            _NB + r"fmha_cutlass[FB]_|^attention_kernel(?:_backward)?_batched"
            r"|^(?!triton_(?:poi|red|per)_)(?:\w+::)*_?efficient_attention_\w+$"
        ),
        note="PyTorch mem_eff_attention/kernels/cutlass{F,B}_*.cu, xFormers cutlass fmha; aten::_efficient_attention_*",
    ),
    Rule(
        "cudnn-attention",
        "attention",
        ident=_r(r"^cudnn\w*?_(?:sdpa|fmha|mha)_"),
        note="cuDNN SDPA runtime-compiled kernels (cudnn_generated_fort_native_sdpa_*, captures only)",
    ),
    Rule(
        "flashinfer-attention",
        "attention",
        ident=_r(
            r"(?:Batch|Single)(?:Decode|Prefill)With(?:Paged|Ragged)?KVCache\w*|PODWithKVCache\w*|BatchMLAPage[d]?Attention\w*"
            r"|(?:Persistent)?(?:VariableLength)?MergeStates?(?:InPlace|LargeNumIndexSets)?Kernel|AttentionSumKernel"
        ),
        note="FlashInfer include/flashinfer/attention/{decode,prefill,pod,mla,cascade}.cuh (not its norm/rope/sampling)",
    ),
    Rule(
        "trtllm-attention",
        "attention",
        ident=_r(r"^fmhaSm\d+\w*Kernel_|^fmha_v2_\w+_kernel|^kernel_mha$|masked_multihead_attention_kernel"),
        note="trtllm-gen fmhaSm100*, TensorRT-LLM fmha_v2 cubins, XQA kernel_mha, decoderMaskedMultiheadAttention",
    ),
    Rule(
        "vllm-attention",
        "attention",
        ident=_r(
            r"paged_attention_(?:v[12]_(?:reduce_)?kernel|ll4mi_\w*kernel)|^kernel_unified_attention_[23]d$|^reduce_segments$"
            r"|^kernel_paged_attention_2d$|merge_attn_states_kernel|Sm100FmhaMla\w*"
        ),
        note="vLLM csrc/attention, csrc/rocm/attention.cu, triton_unified_attention.py, chunked_prefill_paged_decode.py",
    ),
    Rule(
        "triton-attention",
        "attention",
        ident=_r(
            r"^_fwd_kernel$|^_fwd_(?:grouped_)?kernel_stage[12](?:_int8)?$|^_fwd_kernel_splitK$|^_splitK_reduce"
            r"|^_?attn_(?:fwd|bwd)(?:_kernel)?$|^bwd_kernel_(?:dk_dv|dq|fuse)$|^parallel_attn_(?:fwd|bwd)_kernel$"
            r"|^triton_tem_fused_flex_(?:attention|decoding)"
        ),
        note="Triton: ROCm/aiter/AOTriton attn_fwd, vLLM prefix_prefill, SGLang decode_attention, xFormers splitK, "
        "FLA parallel_attn, Inductor flex_attention templates",
    ),
    Rule(
        "ck-aiter-attention",
        "attention",
        ident=_r(r"Fmha(?:Fwd|Bwd|BatchPrefill|BatchDecode)\w*?Kernel|^aiter::(?:fmha_(?:fwd|bwd)_|mla_|pa_|PA_)"),
        note="CK-tile include/ck_tile/ops/fmha/kernel/*.hpp (in ck_tile::kentry), aiter hsa/*/{fmha_v3,mla,pa} asm",
    ),
    Rule(
        "flashmla-sage-attention",
        "attention",
        ident=_r(
            r"sparse_attn_fwd(?:_for_small_topk)?_kernel|get_mla_metadata_kernel|qk_int8?_sv_f(?:8|16)_attn_kernel"
            r"|^compute_attn_ws$|^sage_(?:fwd|quant)\w*$|^(?:MeanScaleKernel|QuantInt8Kernel)$"
            r"|^quant_(?:per_block|key_per_thread|query_per_thread)_int[48]_kernel$"
        ),
        note="FlashMLA csrc/sm90,smxx; SageAttention csrc/qattn, csrc/fused, triton/quant_per_*.py; aiter sage_fwd",
    ),
    Rule(
        "cpu-sdpa-op",
        "attention",
        ident=_r(r"^aten::_?scaled_dot_product|^aten::_flash_attention"),
        note="SDPA operators as the work unit on CPU-only traces",
    ),
    # --- convolution: launched by a convolution op, or named as one --------------------------------
    Rule(
        "convolution-op",
        "convolution",
        scope="convolution",
        note="work launched by aten convolution ops (cudnn/miopen/mkldnn, forward and backward)",
    ),
    Rule(
        "convolution-kernel",
        "convolution",
        ident=_r(
            r"scudnn|_xmma_(?:fprop|dgrad|wgrad)_|xmma_depthwise_convolution|implicit_convolve_sgemm|implicit_?gemm"
            r"|(?:conv2d|dgrad2d|wgrad2d)_c1_k1|dgrad_engine|wgrad_alg\d_engine|winograd|\d(?:fprop|dgrad|wgrad)_"
            r"|cask_cudnn_\w+::compute\w*Offsets|reduce_wgrad|^igemm_(?:fwd|bwd|wrw)_gtc|^naive_conv_|^MIOpenConv"
            r"|^MIOpenCvBwdWrW|gridwise_convolution_|^Im2d2Col|kernel_grouped_conv_(?:fwd|bwd)"
            r"|kernel_batched_gemm_xdlops_bwd_weight|causal_conv1d_(?:fwd|bwd|update)"
        ),
        note="cuDNN scudnn/xmma/winograd/cask names (captures), MIOpen src/kernels and solvers, CK grouped_conv",
    ),
    # --- scopes: what the work was for, when the kernel name is generic ----------------------------
    Rule(
        "attention-core-scope",
        "attention",
        scope="tracekit_attention_core",
        note="tracekit's annotation around scores, softmax and the weighted sum over the cache",
    ),
    Rule("sdpa-op-scope", "attention", scope="sdpa_op", note="kernels launched by an SDPA operator"),
    Rule(
        "attention-fn-layout-copy",
        "elementwise",
        op=_r(_LAYOUT_OPS),
        scope="attention_function",
        note="layout copies (contiguous Q/output, repeat_kv) in an attention function: neither core nor cache",
    ),
    Rule(
        "attention-function-scope",
        "attention",
        scope="attention_function",
        note="HF transformers integrations/*_attention.py, GPT-2 _attn, exllamav2 _attn_{torch,flash,xformers}",
    ),
    Rule("kv-cache-scope", "kv_cache", scope="tracekit_kv_cache", note="tracekit's KV-cache write annotation"),
    Rule("norm-scope", "norm", scope="norm", note="RMSNorm/LayerNorm module or tracekit norm annotation"),
    Rule("rope-scope", "rope", scope="rope", note="rotary embedding helpers (HF apply_rotary_pos_emb, tracekit rope)"),
    Rule(
        "eager-attention-gemm",
        "attention",
        op=_r(r"^aten::(?:bmm|baddbmm|matmul|einsum)$"),
        scope="attention_module",
        outside="linear_module",
        note="eager attention: QK^T and P.V batched GEMMs in an *Attention module or attention record_function",
    ),
    Rule(
        "eager-attention-softmax",
        "attention",
        op=_r(r"^aten::(?:_?softmax|_safe_softmax|_masked_softmax)$"),
        scope="attention_module",
        note="eager attention: the softmax over the scores in an attention module",
    ),
    Rule(
        "eager-attention-scale-mask",
        "attention",
        op=_r(r"^aten::(?:mul|div|masked_fill|where)_?$"),
        scope="attention_module",
        outside="linear_module",
        note="eager attention: the scale and mask of the scores in an attention module (projections stay gemm)",
    ),
    # MoE routing before sampling: a router's top-k and softmax are neither token selection nor attention.
    Rule(
        "moe-routing",
        "moe_routing",
        ident=_r(
            r"topkGating|topk_softmax|topk_sigmoid|moeSoftmax|moeTopK|softmax\d+_topk|moe_align_block_size"
            r"|count_and_sort_expert|grouped_topk|moe_fused_gate|^_topk_forward$|^_(?:combined_)?routing_\w+"
            r"|^_sum_bitmatrix_\w+"
        ),
        note="MoE router top-k/softmax/gating and expert assignment: vLLM csrc/moe (topkGating, moe_align_block_size, "
        "grouped_topk), sgl-kernel (topkGatingSoftmax, moe_fused_gate), exllamav2 (softmax8_topk_norm), "
        "triton_kernels routing (_topk_forward, _combined_routing_*, _sum_bitmatrix_rows: vLLM gpt-oss)",
    ),
    Rule(
        "moe-routing-op",
        "moe_routing",
        op=_r(r"^aten::(?:topk|sort|argsort|softmax|_softmax|sigmoid)$"),
        scope="moe_module",
        note="top-k/softmax of a router inside an MoE block (HF *SparseMoeBlock, *MoE, MoEGate, vLLM FusedMoE)",
    ),
    Rule("sampling-scope", "sampling", scope="tracekit_sampling", note="tracekit's sampling annotation"),
    Rule(
        "sampling-op",
        "sampling",
        op=_r(r"^aten::(topk|argmax|multinomial|sort|argsort|cumsum)$"),
        note="token selection ops",
    ),
    Rule(
        "loss-op",
        "other",
        op=_r(r"^aten::(?:_?log_softmax\w*|nll_loss\w*|cross_entropy\w*)$"),
        note="log_softmax/NLL of a loss: not sampling (tracekit has no loss category)",
    ),
    Rule(
        "log-softmax-kernel",
        "other",
        kernel=_r(r"LogSoftMax|softmax_warp_(?:forward|backward)<[^<>]*?, \d+, true,"),
        note="PyTorch PersistentSoftmax.cuh/SoftMax.cu log-softmax (is_log_softmax=true): a loss, not sampling",
    ),
    # --- generic kernel-name families -------------------------------------------------------------
    Rule(
        "collective",
        "communication",
        ident=_r(r"(?i)nccl|rccl|all_?reduce|all_?gather|reduce_?scatter|cross_device_reduce|gloo|all_?to_?all"),
        note="NCCL/RCCL, vLLM custom all-reduce, FlashInfer/TRT-LLM all-reduce fusion",
    ),
    Rule(
        "linear-attention",
        "other",
        ident=_r(r"FlatKernel|^(?:chunk|fused_recurrent|recompute_w_u|solve_tril)_\w+"),
        note="FLA/GDN/KDA linear attention (fla/ops, flat kernels): not softmax attention",
    ),
    Rule(
        "exllamav2-gemm",
        "gemm",
        ident=_r(r"gemm_half_q_half|q4_matmul|gemm_half_half|fp16_matmul"),
        note="exllamav2 exllamav2_ext/cuda quantized GEMM/GEMV kernels",
    ),
    Rule(
        "moe-expert-gemm",
        "gemm",
        ident=_r(r"^_p?matmul_ogs_\w+|^_finalize_matmul\w*|^fused_moe_kernel\w*|moe_gemm|grouped_gemm|fused_experts"),
        note="MoE expert GEMMs: triton_kernels matmul_ogs (and its finalize/scatter epilogue), Triton fused_moe, "
        "grouped GEMMs; GEMMs, whatever routing chose them",
    ),
    Rule(
        "gemm",
        "gemm",
        ident=_r(
            r"(?i)gemm|gemv|^Cijk_|xmma|nvjet|cutlass|cublas|hipblas|matmul|splitKreduce|wgmma|^fused_moe_kernel$|^epilogue::impl::"
            r"|^aten::(?:mm|addmm|bmm|baddbmm|linear|matmul)$"
        ),
        note="cuBLAS/cuBLASLt (and its epilogue::impl kernels)/cutlass/nvjet, hipBLASLt Cijk_, Triton fused_moe, CPU matmul ops",
    ),
    Rule("rope-kernel", "rope", ident=_r(r"(?i)(?<!p)rope|rotary"), note="vLLM pos_encoding, FlashInfer rope, TRT-LLM"),
    Rule(
        "norm-kernel",
        "norm",
        ident=_r(
            r"(?i)rms_?norm|layer_?norm|batch_?norm|group_?norm|l2norm|qknorm|bn_fw|bn_bw|^aten::native_layer_norm"
            r"|^triton_(?:red|per)_fused(?=\w*_pow_rsqrt_)(?:__to_copy|_add|_mean|_mul|_pow|_rsqrt)+_\d+$"
        ),
        note="PyTorch/cuDNN/vLLM/FlashInfer/CK norm kernels; Inductor kernels fusing nothing but an RMSNorm",
    ),
    Rule(
        "activation-kernel",
        "activation",
        ident=_r(r"(?i)silu|gelu|swiglu|act_and_mul|relu|sigmoid|tanh|^aten::(?:silu|gelu|relu)"),
        note="activation kernels and PyTorch activation functors",
    ),
    Rule(
        "sampling-kernel",
        "sampling",
        ident=_r(r"(?i)topk|argmax|multinomial|radixSort|sampling|sort_kernel"),
        note="top-k/argmax/sort kernels, FlashInfer sampling::",
    ),
    Rule(
        "softmax-unscoped",
        "other",
        ident=_r(r"(?i)softmax"),
        note="a softmax outside attention and sampling scopes (routing, loss, unknown): only its scope can tell",
    ),
    Rule(
        "activation-op",
        "activation",
        scope="activation",
        note="generic kernels of activation ops and modules: ReLU as clamp_min/threshold kernels, HF *Activation",
    ),
    Rule(
        "elementwise",
        "elementwise",
        ident=_r(
            r"(?i)elementwise|reduce_kernel|CatArray|index|copy|fill|^aten::|pointwise|triton_(?:poi|red|per)_"
            r"|transpose|cast|quant|nchwToNhwc|nhwcToNchw|upsample"
        ),
        note="PyTorch elementwise/reduce/cat/index kernels, Inductor pointwise/reduction, layout and quant kernels",
    ),
    Rule("fallback", "other", note="no rule matched"),
)

RULE_INDEX: dict[str, Rule] = {r.name: r for r in RULES}
