"""The built-in Llama-shaped model as a backend (the embedded default: CPU or CUDA, no downloads)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
from torch.autograd.profiler import record_function

from tracekit import annotations as ann
from tracekit.capture.backends.base import (
    Backend,
    CaptureOptions,
    Generation,
    StepCallback,
    resolve_device,
    resolve_dtype,
    synchronize,
)
from tracekit.capture.builtin_model import KVCache, LlamaModel
from tracekit.capture.presets import PRESETS
from tracekit.errors import UserError
from tracekit.manifest import ModelFacts


class BuiltinBackend(Backend):
    name = "builtin"

    def __init__(self, opts: CaptureOptions) -> None:
        if opts.preset not in PRESETS:
            raise UserError(f"unknown --preset {opts.preset!r}; choose one of: {', '.join(PRESETS)}")
        if opts.attn not in ("sdpa", "math"):
            raise UserError(f"--attn {opts.attn!r} is not available for the builtin backend; use sdpa or math")
        if opts.chunk <= 0:
            raise UserError("--chunk must be a positive number of tokens")
        self.shape = PRESETS[opts.preset]
        self.device = resolve_device(opts.device)
        self.dtype = resolve_dtype(opts.dtype, self.device)
        self.chunk = opts.chunk
        self.attn = opts.attn
        self.model = LlamaModel.random(self.shape, opts.attn, seed=opts.seed, device=self.device, dtype=self.dtype)  # type: ignore[arg-type]
        self.cache: KVCache | None = None

    def max_context(self) -> int:
        return self.shape.max_context

    def vocab_size(self) -> int:
        return self.shape.vocab

    def model_facts(self) -> ModelFacts:
        s = self.shape
        return ModelFacts(
            name=f"builtin/{s.name}",
            layers=s.layers,
            heads=s.heads,
            kv_heads=s.kv_heads,
            head_dim=s.head_dim,
            hidden=s.hidden,
            intermediate=s.intermediate,
            vocab=s.vocab,
            dtype=str(self.dtype).removeprefix("torch."),
            dtype_bytes=torch.empty(0, dtype=self.dtype).element_size(),
            parameter_bytes=self.model.parameter_bytes(),
            attn=self.attn,
            max_context=s.max_context,
        )

    def prefill_steps(self, context: int) -> int:
        return -(-context // self.chunk)

    def _cache(self, length: int) -> KVCache:
        if self.cache is None or self.cache.max_len < length:
            self.cache = None
            self.cache = self.model.new_cache(length)
        self.cache.reset()
        return self.cache

    def stream(
        self, prompt: list[int], max_new_tokens: int, timing: Generation, on_step: StepCallback | None = None
    ) -> Iterator[int]:
        """Prefill in chunks, then decode one token at a time, yielding each token as produced."""
        cache = self._cache(len(prompt) + max_new_tokens)
        ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
        dev = self.device
        t0 = time.perf_counter()
        logits = None
        for c, start in enumerate(range(0, len(prompt), self.chunk)):
            part = ids[:, start : start + self.chunk]
            with record_function(ann.prefill(c, start + part.shape[1], part.shape[1])):
                logits = self.model(part, cache)
                if start + part.shape[1] >= len(prompt):
                    with record_function(ann.SAMPLING):
                        nxt = logits[0, -1].argmax()
            if on_step is not None and start + part.shape[1] < len(prompt):
                on_step()
        timing.prefill_s_unsynced = time.perf_counter() - t0
        token = int(nxt.item())  # the host needs the token: this is where an async device finishes
        synchronize(dev)
        timing.prefill_s = time.perf_counter() - t0
        if on_step is not None:
            on_step()
        yield token
        for step in range(1, max_new_tokens):
            t = time.perf_counter()
            with record_function(ann.decode(step, cache.length + 1)):
                logits = self.model(torch.tensor([[token]], device=dev), cache)
                with record_function(ann.SAMPLING):
                    nxt = logits[0, -1].argmax()
                token = int(nxt.item())
            synchronize(dev)
            timing.decode_s.append(time.perf_counter() - t)
            if on_step is not None:
                on_step()
            yield token

    def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        g = Generation()
        for tok in self.stream(prompt, max_new_tokens, g, on_step):
            g.tokens.append(tok)
        return g
