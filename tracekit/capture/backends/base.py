"""The backend interface: one streaming generation, timed honestly, annotated for the profiler."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from tracekit.errors import UserError
from tracekit.manifest import DeviceFacts, ModelFacts


@dataclass
class CaptureOptions:
    backend: str = "builtin"
    preset: str = "tiny"
    model: str | None = None
    attn: str = "sdpa"
    device: str = "auto"
    dtype: str = "auto"
    chunk: int = 512
    seed: int = 0
    no_graphs: bool = False


@dataclass
class Generation:
    """What one streaming generation measured (seconds, synchronized unless said otherwise)."""

    tokens: list[int] = field(default_factory=list)
    prefill_s: float = 0.0
    prefill_s_unsynced: float = 0.0
    decode_s: list[float] = field(default_factory=list)
    ttft_s: float | None = None  # from the call until the first token reached the caller


StepCallback = Callable[[], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for, but CUDA is not available here (use --device cpu)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown --device {name!r}; use auto, cpu or cuda")


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if name not in _DTYPES:
        raise UserError(f"unknown --dtype {name!r}; use auto, float32, bfloat16 or float16")
    return _DTYPES[name]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_facts(device: torch.device) -> DeviceFacts:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return DeviceFacts(
            kind="cuda",
            name=props.name,
            memory_bytes=int(props.total_memory),
            capability=f"{props.major}.{props.minor}",
        )
    import platform

    return DeviceFacts(kind="cpu", name=platform.processor() or platform.machine(), threads=torch.get_num_threads())


def measure_bandwidth(device: torch.device, nbytes: int = 256 * 1024 * 1024, repeats: int = 3) -> float:
    """Copy bandwidth in GB/s (read + write counted), the best of a few large device copies."""
    n = nbytes // 4
    src = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2 * nbytes / best / 1e9


class Backend(ABC):
    """A model that can stream tokens, with each phase inside tracekit's annotations.

    A backend that can keep a prompt's KV cache (``reuses_cache``) lets the sweep prefill each
    context once and decode from that cache in every round (``prepare`` / ``decode_from``);
    the others re-run the prefill in each round through ``generate``."""

    name: str
    device: torch.device
    reuses_cache: bool = False

    @abstractmethod
    def max_context(self) -> int:
        """Largest prompt + generated length this model (and its cache) supports."""

    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def model_facts(self) -> ModelFacts:
        """layers, heads, kv_heads, head_dim, hidden, vocab, dtype, parameter_bytes (read from the engine)."""

    @abstractmethod
    def prefill_steps(self, context: int) -> int:
        """How many profiler steps the prefill of ``context`` tokens takes (chunks)."""

    @abstractmethod
    def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        """Stream ``max_new_tokens`` greedy tokens after ``prompt``; call ``on_step`` after each
        prefill chunk and each decode step (the profiler's ``step``)."""

    def prepare(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        """Prefill ``prompt`` into a cache kept for it (room for ``max_new_tokens`` more) and return
        the prefill's timings with the first token. Calling it again re-runs the prefill into the
        same cache (the prefill's own repeats). Only where ``reuses_cache``."""
        raise NotImplementedError(f"the {self.name} backend does not keep KV caches")

    def decode_from(self, prompt: list[int], start: int, steps: int, on_step: StepCallback | None = None) -> Generation:
        """Decode steps ``start + 1 .. start + steps`` of ``prompt``'s generation from its kept cache
        (rolled back to ``start`` generated tokens): ``decode_s`` and the new tokens. The tokens fed
        are those this generation produced before (greedy, so every round computes the same)."""
        raise NotImplementedError(f"the {self.name} backend does not keep KV caches")

    def release(self) -> None:  # noqa: B027 - optional hook
        """Drop every kept cache."""

    def warmup(self) -> None:
        """Run a short generation so first-call costs do not land in the measurements."""
        self.generate(list(range(1, 9)), 2)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Restore anything the backend patched."""
