"""Phases and steps: which prefill chunk or decode step a piece of device work belongs to.

tracekit's captures name their annotations ``tracekit::prefill[chunk=0,ctx=512,tokens=512]`` and
``tracekit::decode[step=3,ctx=515]``; foreign traces have ``ProfilerStep#N`` (torch.profiler's
schedule) and the step annotations engines write. The table is data, tried in order.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PhaseKey:
    phase: str
    step: int | None
    context_tokens: int | None


_TK = re.compile(r"^tracekit::(prefill|decode)\[([^\]]*)\]$")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
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
    return f"tracekit::{phase}[{inner}]"


@functools.lru_cache(maxsize=65536)
def parse_phase(name: str) -> PhaseKey | None:
    """The phase a span name denotes, or None; cached because span names repeat a lot."""
    m = _TK.match(name)
    if m:
        fields: dict[str, int] = {}
        for part in m.group(2).split(","):
            k, _, v = part.partition("=")
            if v.lstrip("-").isdigit():
                fields[k.strip()] = int(v)
        phase = m.group(1)
        step = fields.get("step") if phase == "decode" else fields.get("chunk")
        return PhaseKey(phase, step, fields.get("ctx"))
    for pat, phase in _PATTERNS:
        m = pat.match(name)
        if m:
            step = int(m.group(1)) if m.groups() and m.group(1) and m.group(1).isdigit() else None
            return PhaseKey(phase, step, None)
    return None
