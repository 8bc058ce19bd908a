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
    reuses_cache = True

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
        self._kept: dict[int, _Kept] = {}

    def max_context(self) -> int:
        return self.shape.max_context

    def vocab_size(self) -> int:
        return self.shape.vocab

    def model_facts(self) -> ModelFacts:
        s = self.shape
        return ModelFacts(
            name=f"builtin/{s.name}",
            **s.dims(),
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

    def _prefill(self, prompt: list[int], cache: KVCache, timing: Generation, on_step: StepCallback | None) -> int:
        """Run the prompt in chunks into ``cache`` (from position 0); return the first token."""
        cache.reset()
        ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
        t0 = time.perf_counter()
        nxt = None
        for c, start in enumerate(range(0, len(prompt), self.chunk)):
            part = ids[:, start : start + self.chunk]
            with record_function(ann.prefill(c, start + part.shape[1], part.shape[1])):
                logits = self.model(part, cache)
                if start + part.shape[1] >= len(prompt):
                    with record_function(ann.SAMPLING):
                        nxt = logits[0, -1].argmax()
            if on_step is not None and start + part.shape[1] < len(prompt):
                on_step()
        assert nxt is not None
        timing.prefill_s_unsynced = time.perf_counter() - t0
        token = int(nxt.item())  # the host needs the token: this is where an async device finishes
        synchronize(self.device)
        timing.prefill_s = timing.ttft_s = time.perf_counter() - t0
        if on_step is not None:
            on_step()
        return token

    def _decode(
        self, cache: KVCache, token: int, first_step: int, steps: int, timing: Generation, on_step: StepCallback | None
    ) -> Iterator[int]:
        """Feed ``token`` and decode ``steps`` tokens, one step at a time (steps numbered from ``first_step``)."""
        dev = self.device
        for step in range(first_step, first_step + steps):
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

    def stream(
        self, prompt: list[int], max_new_tokens: int, timing: Generation, on_step: StepCallback | None = None
    ) -> Iterator[int]:
        """Prefill in chunks, then decode one token at a time, yielding each token as produced."""
        cache = self._cache(len(prompt) + max_new_tokens)
        token = self._prefill(prompt, cache, timing, on_step)
        yield token
        yield from self._decode(cache, token, 1, max_new_tokens - 1, timing, on_step)

    def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        g = Generation()
        for tok in self.stream(prompt, max_new_tokens, g, on_step):
            g.tokens.append(tok)
        return g

    # --- kept caches: one per prompt, prefilled once, decoded from in every round -------------------
    def prepare(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        kept = self._kept.get(len(prompt))
        if kept is None or kept.prompt != prompt or kept.cache.max_len < len(prompt) + max_new_tokens:
            kept = _Kept(prompt, self.model.new_cache(len(prompt) + max_new_tokens))
            self._kept[len(prompt)] = kept
        g = Generation()
        token = self._prefill(prompt, kept.cache, g, on_step)
        kept.tokens[:1] = [token]
        g.tokens.append(token)
        return g

    def decode_from(self, prompt: list[int], start: int, steps: int, on_step: StepCallback | None = None) -> Generation:
        kept = self._kept.get(len(prompt))
        if kept is None or kept.prompt != prompt or len(kept.tokens) <= start:
            raise RuntimeError(f"no kept cache holds {start} generated tokens of this {len(prompt)}-token prompt")
        # Positions past the prompt + ``start`` tokens are overwritten as the steps run again.
        kept.cache.length = len(prompt) + start
        g = Generation()
        for i, tok in enumerate(self._decode(kept.cache, kept.tokens[start], start + 1, steps, g, on_step)):
            g.tokens.append(tok)
            if len(kept.tokens) == start + 1 + i:
                kept.tokens.append(tok)
        return g

    def release(self) -> None:
        self._kept.clear()


class _Kept:
    """A prompt's cache, prefilled once, and the tokens its greedy generation produced so far."""

    def __init__(self, prompt: list[int], cache: KVCache) -> None:
        self.prompt = list(prompt)
        self.cache = cache
        self.tokens: list[int] = []
