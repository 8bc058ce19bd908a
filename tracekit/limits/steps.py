"""``analyze`` with limits: the roof and model facts for a set of traces, and each step's and each
kernel's bytes, FLOPs and achieved figures against the roof.

Per step (``--by step``): attention's work from the step's query and KV tokens and the model facts
(``roofline.attention_work``) over the step's attention time; the weight GEMMs' over its ``gemm``
time; the whole step's (weights + attention) over the device's busy time in the step (idle left
out: a launch-bound step would otherwise read as slow memory). Per kernel (``--by kernel``): the
work of the GEMM operators with recorded shapes that launched it (``trace_facts``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracekit.analysis.result import PhaseResult
from tracekit.limits.model import ModelShape, from_config, from_manifest
from tracekit.limits.roofline import (
    Achieved,
    Roof,
    Work,
    achieved,
    attention_work,
    choose_roof,
    decode_gemm_work,
    impossible_message,
)
from tracekit.limits.trace_facts import KernelWork, TraceFacts, shape_from_facts
from tracekit.manifest import Manifest

FIELDS = (
    "bytes",
    "flops",
    "achieved_tb_s",
    "achieved_tflops",
    "intensity",
    "peak_share",
    "bound",
    "above_peak",
    "above_measured",
)


@dataclass
class Limits:
    """What one ``analyze`` compares with: the roof, the model facts, and lines saying what is
    missing or impossible."""

    roof: Roof | None = None
    roof_source: str = ""
    shape: ModelShape | None = None  # the one model of every trace; None where they differ or none is known
    per_trace: list[ModelShape | None] = field(default_factory=list)  # each trace's, in the order of its facts
    notes: list[str] = field(default_factory=list)
    step_notes: list[str] = field(default_factory=list)  # what only step figures miss (model facts)
    mixed_devices: bool = False  # the traces name several devices and no --device chose one

    def notes_for(self, by: str, kernels_with_work: bool) -> list[str]:
        """The notes worth saying for ``--by`` this: kernel rows need no model facts, and a
        missing roof matters to them only where some kernel had shapes to compare."""
        if by == "step":
            return self.notes + self.step_notes
        return self.notes if kernels_with_work else []

    def shape_of(self, trace: int) -> ModelShape | None:
        """The model facts of trace number ``trace`` (its index among the facts ``resolve`` had)."""
        return self.per_trace[trace] if 0 <= trace < len(self.per_trace) else self.shape

    def to_json(self) -> dict[str, Any]:
        device: dict[str, Any] = (
            {"name": None, "source": self.roof_source, "peak_bandwidth_tb_s": None, "peak_tflops": {}}
            if self.roof is None
            else {**self.roof.to_json(), "source": self.roof_source}
        )
        return {"device": device, "model_facts": None if self.shape is None else self.shape.to_json()}


def own_run(paths: list[str]) -> Manifest | None:
    """The manifest of the tracekit run the first trace belongs to (its folder's), if it is one."""
    from tracekit.errors import UserError
    from tracekit.manifest import MANIFEST, read_manifest

    if not paths:
        return None
    folder = Path(paths[0]).parent
    if not (folder / MANIFEST).is_file():
        return None
    try:
        m = read_manifest(folder)
    except UserError:
        return None
    names = {c.trace for c in m.contexts} | {c.enriched_trace for c in m.contexts}
    return m if Path(paths[0]).name in names else None


def resolve(
    facts: list[TraceFacts | None],
    *,
    device: str | None = None,
    peak_bandwidth: float | None = None,
    peak_flops: float | None = None,
    model_config: Path | None = None,
    paths: list[str] | None = None,
) -> Limits:
    """The roof and model facts for these traces: flags first; then, for traces of a tracekit run,
    its manifest (model facts, the device, the bandwidth capture measured); then the first trace
    that names a device. Without --model-config or a manifest each trace's model facts are its own
    shapes' (``Limits.per_trace``): traces of different models never borrow each other's."""
    flags_device = device
    names = sorted({f.device_name for f in facts if f is not None and f.device_name.strip()})
    keys = sorted({f.device_key for f in facts if f is not None and f.device_key})
    run = own_run(paths or [])
    if run is not None and run.device.name and run.device.kind == "cuda":
        names = names or [run.device.name]
    trace_device = names[0] if names else ""
    measured = (
        run.device.measured_bandwidth_gbps
        if run is not None and (run.device.measured_bandwidth_gbps or 0) > 0
        else None
    )
    if device is None and not trace_device and len(keys) == 1:
        device = keys[0]  # named by its properties: the source says how
    roof, source = choose_roof(
        trace_device=trace_device,
        device=device,
        peak_bandwidth_gbps=peak_bandwidth,
        peak_tflops=peak_flops,
        measured_gbps=measured,
    )
    if roof is not None and device is not None and flags_device is None:
        source = (
            f"{roof.name} (the trace's deviceProperties: compute capability, SM/CU count and memory): {roof.source}"
        )
    out = Limits(roof=roof, roof_source=source)
    if model_config is None and run is not None:
        out.shape = from_manifest(run.model)
    if len(names) > 1 and device is None:
        out.mixed_devices = True
        out.notes.append(
            f"the traces ran on {len(names)} devices ({', '.join(names)}): all are compared with {trace_device}'s peaks; pass --device"
        )
    if roof is None:
        out.notes.append(f"no peaks to compare with: {source}")
    if model_config is not None:
        out.shape = from_config(model_config)
    if out.shape is not None:  # --model-config or the run's manifest: one model for every trace
        out.per_trace = [out.shape] * len(facts)
    else:
        _facts_per_trace(out, facts, paths or [])
    return out


def _model_key(shape: ModelShape) -> tuple[Any, ...]:
    """What says two traces ran the same model (step weights differ with what a step computes)."""
    return (shape.layers, shape.hidden, shape.heads, shape.kv_heads, shape.head_dim, shape.dtype)


def _facts_per_trace(out: Limits, facts: list[TraceFacts | None], paths: list[str]) -> None:
    """Each trace's model facts from its own shapes, and notes where they are missing, lack the
    GEMM weights, or differ between traces. ``out.shape`` is set only where all traces agree."""

    def name(i: int) -> str:
        return Path(paths[i]).name if i < len(paths) else f"trace {i + 1}"

    shapes = [shape_from_facts(f) if f is not None else None for f in facts]
    out.per_trace = shapes
    known = [(i, s) for i, s in enumerate(shapes) if s is not None]
    if not known:
        out.step_notes.append(
            "no model facts: the traces record no attention operator shapes (record_shapes, eager ops); "
            "pass --model-config PATH/config.json for attention bytes and FLOPs"
        )
        return
    models = {_model_key(s) for _, s in known}
    if len(models) == 1:
        out.shape = known[0][1]
    else:
        out.step_notes.append(
            f"the traces' shapes give {len(models)} different models: each trace's figures use its own shapes; "
            "pass --model-config to use one model for all"
        )
    several = len(facts) > 1
    missing = [name(i) for i, s in enumerate(shapes) if s is None]
    if missing:
        these = "this trace records" if len(missing) == 1 else "these traces record"
        out.step_notes.append(
            f"no model facts for {', '.join(missing)}: {these} no attention operator shapes (graph replay, "
            "no record_shapes), so their steps have no bytes or FLOPs; pass --model-config PATH/config.json"
        )
    bare = [name(i) for i, f in enumerate(facts) if shapes[i] is not None and not (f and f.step_weight_bytes)]
    if bare:
        which = f" ({', '.join(bare)})" if several else ""
        out.step_notes.append(
            f"the trace's shapes show no GEMM weights{which}: step bytes leave the weights out; pass --model-config"
        )


def _pairs(requests: int, query: int, kv: int) -> float:
    """Query-key pairs of a step from its totals, each request taken as an equal share: exact for
    decode (one query token a request) and for prefill chunks of equal length."""
    if requests <= 0 or query <= 0:
        return 0.0
    q, k = query / requests, kv / requests
    return requests * max(0.0, q * k - q * (q - 1) / 2)


def _blank(prefix: str) -> dict[str, Any]:
    return {f"{prefix}{k}": None for k in FIELDS}


def _fields(prefix: str, a: Achieved | None) -> dict[str, Any]:
    return _blank(prefix) if a is None else a.to_json(prefix)


def step_fields(
    rows: list[dict[str, Any]],
    phases: list[PhaseResult],
    limits: Limits,
    facts: TraceFacts | None = None,
    *,
    trace: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each step row's limit fields (``attention_*``, ``gemm_*``, ``step_*``, ``step_achieved_tb_s``),
    and the truth check's lines for figures above the device's peak. A step's GEMM work is its GEMM
    operators' (``facts.step_gemm``, from their Input Dims) where the trace recorded them, else the
    model's count (``gemm_source`` says which). ``trace`` is the trace's index among the facts
    ``resolve`` had: its model facts are ``limits.shape_of(trace)``."""
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    shape, roof = limits.shape_of(trace), limits.roof
    dtype = shape.dtype if shape is not None else "bf16"
    for index, (row, p) in enumerate(zip(rows, phases)):
        req, q, kv = row.get("requests"), row.get("query_tokens"), row.get("kv_tokens")
        extra: dict[str, Any] = {}
        att = gemm = step = None
        shaped = facts.step_gemm.get(index) if facts is not None else None
        gemm_source = None
        if shape is not None and kv is not None and q is not None:
            requests = req if req else 1
            aw = attention_work(shape, query_tokens=q, kv_tokens=kv, requests=requests, pairs=_pairs(requests, q, kv))
            if shaped is not None:
                gw, gemm_source = Work(*shaped), "trace shapes"
            elif shape.params:
                gw, gemm_source = decode_gemm_work(shape, q), "model"
            else:
                gw = Work(0.0, 0.0)
            att = achieved(aw, row["attention_us"] / 1e6, roof, dtype)
            gemm_us = p.categories["gemm"].time_us if "gemm" in p.categories else 0.0
            gemm = achieved(gw, gemm_us / 1e6, roof, dtype) if gw.bytes > 0 else None
            step = achieved(aw + gw, p.busy_us / 1e6, roof, dtype)
            for what, a in (("attention", att), ("the weight GEMMs", gemm), ("the step", step)):
                if a is not None and a.above_roof and roof is not None:
                    problems.append(f"step {row.get('step')}: " + impossible_message(what, a, roof))
        extra.update(_fields("attention_", att))
        extra.update(_fields("gemm_", gemm))
        extra["gemm_source"] = gemm_source if gemm is not None else None
        extra.update(_fields("step_", step))
        out.append(extra)
    return out, problems


def kernel_fields(kw: KernelWork | None, roof: Roof | None) -> dict[str, Any]:
    """A kernel row's ``bytes``, ``flops``, ``achieved_tb_s``, ``achieved_tflops``, ``peak_share``,
    ``bound`` (None where no operator with shapes launched it)."""
    a = None
    if kw is not None and kw.time_us > 0:
        a = achieved(Work(kw.bytes, kw.flops), kw.time_us / 1e6, roof, kw.dtype or "bf16")
    out = _fields("", a)
    out["shaped_count"] = None if kw is None else kw.count
    return out
