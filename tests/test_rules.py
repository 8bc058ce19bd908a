"""The rule table: kernel names of every engine in use, and the scopes that decide generic kernels.

The name table (``tests/data/kernel_names.tsv``) holds real names taken from the engines' own
sources and from public captures, each with its source; near misses are names a careless rule
would call attention. The scope tests build small traces whose spans nest like torch.profiler's.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.classify import Classifier
from tracekit.analysis.kernel_id import identity
from tracekit.analysis.rules import RULES
from tracekit.render.analyze_tables import notes
from tracekit.trace.build import build_trace
from tracekit.trace.model import Args, Event, Trace

TABLE = Path(__file__).parent / "data" / "kernel_names.tsv"
ROWS = list(csv.DictReader(TABLE.open(newline=""), delimiter="\t"))
POSITIVE = ("attention", "kv_cache", "convolution")


@pytest.fixture(scope="module")
def by_name() -> Classifier:
    """A classifier for names alone (no launch, no scope: as for graph replays and unlinked work)."""
    return Classifier(build_trace("names", [Event(cat="kernel", name="k", pid=0, tid=7, ts=0, dur=1)]))


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['category']}:{r['name'][:60]}" for r in ROWS])
def test_kernel_name_table(row: dict[str, str], by_name: Classifier) -> None:
    got = by_name.classify(row["name"], -1)
    assert got.category == row["category"], f"{row['family']}: {got} ({row['source']})"


def test_name_table_covers_the_families() -> None:
    assert all(r["source"].strip() for r in ROWS)
    positives = [r for r in ROWS if r["category"] in POSITIVE]
    near_misses = [r for r in ROWS if r["category"] != "attention"]
    assert len(positives) >= 60 and len(near_misses) >= 30
    names = "\n".join(r["name"] for r in ROWS if r["category"] != "attention")
    for must in (
        r"^chunk_fwd_kernel",  # linear attention
        r"^triton_poi_fused__scaled_dot_product_efficient_attention",  # Inductor prep
        r"quant_kernel<.*flashinfer::",  # a quantization kernel naming an attention library
        r"LogSoftMax|softmax_warp_forward<float, float, float, 10, true",  # log_softmax of a loss
        r"Rotary|rotary",  # rotary
        r"direct_copy_kernel|CatArrayBatchedCopy",  # layout copies
        r"flashinfer::norm::",  # FlashInfer's non-attention kernels
    ):
        assert re.search(must, names, re.M), must
    families = {r["family"].split(" (")[0] for r in ROWS if r["category"] == "attention"}
    for fam in ("flash-attn-2", "flash-attn-3", "flash-attn-4", "flashinfer", "vllm paged attention", "cudnn-sdpa"):
        assert fam in families, fam


@pytest.mark.parametrize(
    ("name", "ident"),
    [
        (
            "void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 64>, false>(flash::Flash_fwd_params)",
            "flash::flash_fwd_kernel",
        ),
        (
            "void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<A<1>, B> > >(P)",
            "cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90>>",
        ),
        (
            "std::enable_if<(8)>(0)&&vllm::_typeConvert<c10::BFloat16>::exists, void>::type "
            "vllm::fused_add_rms_norm_kernel<c10::BFloat16, 8>(c10::BFloat16*, long)",
            "vllm::fused_add_rms_norm_kernel",
        ),
        ("_ZN7ck_tile6kentryILi256ELi2ENS_13FmhaFwdKernelINS_2", "ck_tile::kentry<ck_tile::FmhaFwdKernel>"),
        ("_ZN5aiter24fmha_fwd_hd128_bf16_rtneE", "aiter::fmha_fwd_hd128_bf16_rtne"),
        (
            "kernel_cutlass_kernel_flash_attncuteflash_fwd_sm90FlashAttentionForwardSm90_object_at__t",
            "flash_attncuteflash_fwd_sm90FlashAttentionForwardSm90",
        ),
        ("sage_fwd", "sage_fwd"),
        ("Memcpy HtoD (Pageable -> Device)", "Memcpy HtoD (Pageable -> Device)"),
        ("aten::bmm", "aten::bmm"),
    ],
)
def test_identity_reads_the_kernels_own_name(name: str, ident: str) -> None:
    assert identity(name) == ident


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.text(alphabet="_ZNILE0123456789abcSK<>():, ", max_size=60).map(lambda s: "_Z" + s),
        st.text(alphabet="void ns:<>()&*, abc123{}#", max_size=60),
    )
)
def test_identity_never_fails(name: str) -> None:
    got = identity(name)
    assert isinstance(got, str) and (got or not name.strip())


# --- scopes, built as torch.profiler nests them ---------------------------------------------------

_CORR = iter(range(1, 1 << 30))


def _launch(
    events: list[Event], kernel: str, t: float, *, ops: tuple[str, ...] = (), runtime: str = "cudaLaunchKernel"
) -> None:
    """Ops nested at ``t`` (outermost first), a launch call inside, and its kernel on the device."""
    corr = next(_CORR)
    for depth, op in enumerate(ops):
        events.append(Event(cat="cpu_op", name=op, pid=1, tid=1, ts=t + depth * 0.1, dur=4 - depth * 0.2))
    events.append(Event(cat="cuda_runtime", name=runtime, pid=1, tid=1, ts=t + 2, dur=0.5, args=Args(correlation=corr)))
    events.append(Event(cat="kernel", name=kernel, pid=0, tid=7, ts=t + 100, dur=3, args=Args(correlation=corr)))


def _scope(events: list[Event], name: str, t: float, dur: float, cat: str = "python_function") -> None:
    events.append(Event(cat=cat, name=name, pid=1, tid=1, ts=t, dur=dur))


def _decisions(trace: Trace) -> list[tuple[str, str]]:
    clf = Classifier(trace)
    return [(d.name, clf.classify(d.name, int(n)).rule) for d, n in zip(trace.device, trace.link.tolist())]


def _eager_attention(block: str, cat: str) -> Trace:
    ev: list[Event] = []
    _scope(ev, block, 0, 100, cat)
    _scope(ev, "nn.Module: Linear_0", 1, 9)
    _launch(ev, "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", 2, ops=("aten::linear", "aten::addmm"))
    _scope(ev, "nn.Module: Linear_1", 11, 9)  # a LoRA-style scaling inside a projection stays elementwise
    _launch(
        ev,
        "void at::native::vectorized_elementwise_kernel<4, at::native::AUnaryFunctor<float> >(int)",
        12,
        ops=("aten::mul",),
    )
    _launch(
        ev,
        "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_32x1_nn_align8>(P)",
        21,
        ops=("aten::matmul", "aten::bmm"),
    )
    _launch(
        ev,
        "void at::native::vectorized_elementwise_kernel<4, at::native::AUnaryFunctor<float> >(int)",
        31,
        ops=("aten::mul",),
    )
    _launch(
        ev,
        "void at::native::(anonymous namespace)::cunn_SoftMaxForward<8, float>(float*)",
        41,
        ops=("aten::softmax", "aten::_softmax"),
    )
    _launch(
        ev,
        "void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}> >(int)",
        51,
        ops=("aten::contiguous", "aten::copy_"),
    )
    return build_trace("eager", ev)


@pytest.mark.parametrize(
    ("block", "cat"),
    [
        ("nn.Module: TimesformerSelfAttention_0", "python_function"),  # with_modules
        ("model.layers.0.self_attn", "user_annotation"),  # record_function
    ],
)
def test_eager_attention_core_by_scope_projections_stay_gemm(block: str, cat: str) -> None:
    assert [r for _, r in _decisions(_eager_attention(block, cat))] == [
        "gemm",
        "elementwise",
        "eager-attention-gemm",
        "eager-attention-scale-mask",
        "eager-attention-softmax",
        "elementwise",
    ]


def test_outside_an_attention_block_the_same_kernels_are_generic() -> None:
    got = _decisions(_eager_attention("nn.Module: Qwen2MLP_0", "python_function"))
    assert [r for _, r in got] == ["gemm", "elementwise", "gemm", "elementwise", "softmax-unscoped", "elementwise"]


def test_attention_function_scope_counts_the_core_not_its_layout_copies() -> None:
    ev: list[Event] = []
    _scope(ev, "nn.Module: Qwen2Attention_0", 0, 100)
    _scope(ev, "transformers/integrations/sdpa_attention.py(18): sdpa_attention_forward", 1, 60)
    _launch(
        ev,
        "void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}> >(int)",
        2,
        ops=("aten::contiguous", "aten::copy_"),
    )
    _launch(
        ev,
        "void pytorch_flash::flash_fwd_kernel<pytorch_flash::Flash_fwd_kernel_traits<64, 128> >(pytorch_flash::Flash_fwd_params)",
        12,
        ops=("aten::_scaled_dot_product_flash_attention", "aten::_flash_attention_forward"),
    )
    _scope(ev, "transformers/integrations/eager_attention.py(30): eager_attention_forward", 21, 30)
    _launch(
        ev,
        "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float> >(int)",
        22,
        ops=("aten::add",),
    )
    assert [r for _, r in _decisions(build_trace("fn", ev))] == [
        "attention-fn-layout-copy",
        "flash-attention",
        "attention-function-scope",
    ]


def test_relu_through_clamp_and_threshold_fused_relu_convolution() -> None:
    clamp = "void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::launch_clamp_scalar(at::TensorIteratorBase&)::{lambda()#1}>(int)"
    ev: list[Event] = []
    _launch(ev, clamp, 0, ops=("aten::relu_", "aten::clamp_min_"))
    _launch(ev, clamp, 10, ops=("aten::clamp",))
    _launch(
        ev,
        "void at::native::vectorized_elementwise_kernel<4, at::native::BinaryFunctor<float> >(int)",
        20,
        ops=("aten::threshold_backward",),
    )
    _launch(
        ev, "cudnn_infer_volta_scudnn_128x64_relu_medium_nn_v1", 30, ops=("aten::conv2d", "aten::cudnn_convolution")
    )
    _launch(ev, "volta_sgemm_64x64_nt", 40, ops=("aten::convolution_backward",))
    _launch(
        ev,
        "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, at::native::(anonymous namespace)::LogSoftMaxForwardEpilogue>(float*)",
        50,
        ops=("aten::log_softmax", "aten::_log_softmax"),
    )
    t = build_trace("relu", ev)
    clf = Classifier(t)
    cats = [clf.classify(d.name, int(n)).category for d, n in zip(t.device, t.link.tolist())]
    assert cats == ["activation", "elementwise", "activation", "convolution", "convolution", "other"]


def test_graph_replays_are_classified_by_name_and_counted() -> None:
    ev: list[Event] = []
    _scope(ev, "nn.Module: LlamaAttention_0", 0, 100)
    corr = next(_CORR)
    ev.append(Event(cat="cpu_op", name="aten::bmm", pid=1, tid=1, ts=1, dur=10))
    ev.append(Event(cat="cuda_runtime", name="cudaGraphLaunch", pid=1, tid=1, ts=2, dur=1, args=Args(correlation=corr)))
    for i, k in enumerate(
        ["ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_tn", "void vllm::paged_attention_v2_kernel<__half, 128>(float*)"]
    ):
        ev.append(Event(cat="kernel", name=k, pid=0, tid=7, ts=200 + 10 * i, dur=4, args=Args(correlation=corr)))
    _launch(ev, "void at::native::(anonymous namespace)::unlinked_tail_kernel<float>(float*)", 300)
    ev.append(Event(cat="kernel", name="flash_fwd_kernel", pid=0, tid=7, ts=50, dur=2))  # no launch in the trace
    trace = build_trace("graph", ev)
    # The graph's kernels sit under an attention module and bmm, but the launch is the whole graph's.
    assert [r for _, r in _decisions(trace)][:2] == ["gemm", "vllm-attention"]
    res = analyze_trace(trace)
    assert (res.graph_count, res.graph_us) == (2, 8.0)
    assert (res.unlinked_count, res.unlinked_us) == (1, 2.0)
    assert res.to_json()["graph_count"] == 2
    lines = notes(res)
    assert any("2 kernels" in n and "graphs" in n for n in lines)
    assert any("1 kernels" in n and "no launch" in n for n in lines)


def _stepped(device_dur: float) -> Trace:
    """One host ProfilerStep launching two kernels 100 µs apart, with a device-side annotation of
    ``device_dur`` µs at the first kernel."""
    ev: list[Event] = []
    _scope(ev, "ProfilerStep#3", 0, 50, "user_annotation")
    _launch(ev, "gemm_a", 1)
    _launch(ev, "gemm_b", 20)
    ev[-1] = Event(cat="kernel", name="gemm_b", pid=0, tid=7, ts=200, dur=3, args=ev[-1].args)
    ev.append(Event(cat="gpu_user_annotation", name="ProfilerStep#3", pid=0, tid=7, ts=101, dur=device_dur))
    return build_trace("steps", ev)


def test_window_from_the_host_side_when_the_device_side_does_not_cover_the_work() -> None:
    covering = analyze_trace(_stepped(102.0), "ProfilerStep#3")
    assert covering.window.source == "device" and covering.window.dur_us == 102.0
    short = analyze_trace(_stepped(17.0), "ProfilerStep#3")  # as ROCm writes them
    assert short.window.source == "host"
    assert (short.window.start_us, short.window.dur_us) == (101.0, 102.0)
    assert short.busy_us == 6.0 and short.to_json()["window"]["source"] == "host"
    assert any("launched within its host span" in n for n in notes(short))


def test_every_rule_says_where_its_names_come_from() -> None:
    assert all(r.note for r in RULES)
    assert len({r.name for r in RULES}) == len(RULES)
    assert RULES[-1].category == "other" and RULES[-1].ident is None and RULES[-1].kernel is None


def test_engine_steps_without_numbers_are_steps_each() -> None:
    """vLLM/SGLang step annotations carry no number: each one is a step of its own, numbered in
    time order, not all of them one phase spanning the whole trace."""
    from tracekit.analysis.analyze import analyze_trace

    ev: list[object] = []
    for i, name in enumerate(["execute_model"] * 3 + ["gpu_model_runner: forward"] * 2):
        t = 1000.0 * i
        c = 900 + i
        ev += [
            Event(cat="user_annotation", name=name, pid=1, tid=1, ts=t, dur=100),
            Event(
                cat="cuda_runtime", name="cudaLaunchKernel", pid=1, tid=1, ts=t + 10, dur=5, args=Args(correlation=c)
            ),
            Event(cat="kernel", name="k", pid=0, tid=7, ts=t + 20, dur=50, args=Args(correlation=c)),
        ]
    steps = analyze_trace(build_trace("engine", ev)).phases
    assert [(p.phase, p.step) for p in steps] == [("step", i) for i in range(5)]
    assert all(p.span_us == 100 and p.idle_us == 50 for p in steps)


def test_one_odd_correlation_id_leaves_the_integer_ones_linked() -> None:
    """A string (or out-of-range) id on one event gets a code of its own; the integer ids beside
    it keep linking kernels to their launches."""
    ev = [
        Event(cat="cpu_op", name="aten::mm", pid=1, tid=1, ts=0, dur=10, args=Args(correlation="abc")),
        Event(cat="cuda_runtime", name="cudaLaunchKernel", pid=1, tid=1, ts=1, dur=2, args=Args(correlation=7)),
        Event(cat="kernel", name="k", pid=0, tid=7, ts=5, dur=1, args=Args(correlation=7)),
        Event(cat="kernel", name="k2", pid=0, tid=7, ts=8, dur=1, args=Args(correlation="abc")),
    ]
    t = build_trace("odd", ev)
    # The integer id meets its launch (host span 1, inside the op); the string id names no launch.
    assert t.link.tolist() == [1, -1]


_TOPK = (
    "void at::native::sbtopk::gatherTopK<float, unsigned int, 2, false>(at::cuda::detail::TensorInfo<float const, "
    "unsigned int>, unsigned int, unsigned int, bool, unsigned int, unsigned int, at::cuda::detail::TensorInfo<float, "
    "unsigned int>, unsigned int, at::cuda::detail::TensorInfo<long, unsigned int>, unsigned int, float*)"
)


@pytest.mark.parametrize(
    ("block", "rule"),
    [
        ("nn.Module: MixtralSparseMoeBlock_0", "moe-routing-op"),  # HF Mixtral's router: torch.topk
        ("nn.Module: MoEGate_3", "moe-routing-op"),  # DeepSeek
        ("nn.Module: LlamaForCausalLM_0", "sampling-op"),  # the same kernel choosing a token
    ],
)
def test_router_topk_is_moe_routing_only_inside_an_moe_block(block: str, rule: str) -> None:
    ev: list[Event] = []
    _scope(ev, block, 0, 100)
    _launch(ev, _TOPK, 1, ops=("aten::topk",))
    _launch(ev, "Cijk_Alik_Bljk_BBS_BH_Bias_HA_S_SAV_UserArgs_MT16x16x256_MI16x16x1_SN_", 11, ops=("aten::mm",))
    got = _decisions(build_trace("moe", ev))
    assert [r for _, r in got] == [rule, "gemm"]  # expert GEMMs stay gemm


def test_vllm_moe_trace_routing_is_its_own_category() -> None:
    """vLLM gpt-oss (TraceLens's trace): triton_kernels routing is moe_routing, expert GEMMs gemm,
    and sampling holds only the sampler's kernels."""
    from tracekit.trace.read import load_trace

    res = analyze_trace(
        load_trace(Path(__file__).parent / "data" / "engines" / "vllm-gptoss-decode-fullgraph-mi300x.json.gz")
    )
    by_name = {k.name: (k.category, k.rule) for k in res.kernels}
    for name in ("_topk_forward", "_combined_routing_compute", "_combined_routing_memset", "_sum_bitmatrix_rows"):
        assert by_name[name] == ("moe_routing", "moe-routing"), name
    assert by_name["_matmul_ogs_NNT_bf16xbf16xmxfp4_16x128x256x1_swiglu"] == ("gemm", "moe-expert-gemm")
    assert res.categories["moe_routing"].count == 4 * 24  # four routing kernels in each of 24 layers
    assert not any(k.category == "sampling" and ("topk" in k.name or "rout" in k.name) for k in res.kernels)
