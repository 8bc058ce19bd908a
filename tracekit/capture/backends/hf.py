"""HF transformers backend: a local model directory (never a download) or a small random preset
(``hf_load``).

Streaming goes through ``model.generate`` with a streamer that timestamps every token (after a
device synchronization). Phases come from forward hooks on the model; the attention core is the
attention function transformers dispatches to, wrapped in ``tracekit::attention_core`` while the
backend lives and restored by ``close()``. transformers' own code is never edited.
"""

from __future__ import annotations

import time
from typing import Any

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
from tracekit.capture.backends.hf_load import import_transformers, load_model
from tracekit.errors import UserError
from tracekit.manifest import ModelFacts

ATTN = {"sdpa": "sdpa", "eager": "eager", "flash_attention_2": "flash_attention_2", "math": "eager"}


class _AttentionScope:
    """Wraps every attention function transformers dispatches to in ``tracekit::attention_core``."""

    def __init__(self) -> None:
        from transformers import modeling_utils

        self.iface = modeling_utils.ALL_ATTENTION_FUNCTIONS
        self.original = getattr(self.iface, "get_interface", None)
        if self.original is None:
            raise UserError("this transformers release has no AttentionInterface.get_interface; use transformers>=4.53")
        original = self.original

        def get_interface(impl: str, default: Any) -> Any:
            fn = original(impl, default)
            return _wrap(fn)

        setattr(self.iface, "get_interface", get_interface)  # noqa: B010 - patching a method on purpose

    def restore(self) -> None:
        if self.original is not None:
            try:
                del self.iface.get_interface  # back to the class method
            except AttributeError:
                setattr(self.iface, "get_interface", self.original)  # noqa: B010


def _wrap(fn: Any) -> Any:
    wrapped = getattr(fn, "_tracekit_wrapped", None)
    if wrapped is not None:
        return wrapped

    def attention_core(*args: Any, **kwargs: Any) -> Any:
        with record_function(ann.ATTENTION_CORE):
            return fn(*args, **kwargs)

    try:
        fn._tracekit_wrapped = attention_core
    except (AttributeError, TypeError):
        pass
    return attention_core


class _Streamer:
    """A transformers streamer that timestamps each token, with and without synchronizing.

    With ``decode_only`` (a generation continued from a kept cache) every token is a decode step."""

    def __init__(self, device: torch.device, t0: float, gen: Generation, *, decode_only: bool = False) -> None:
        self.device = device
        self.t0 = t0
        self.gen = gen
        self.prompt_seen = False
        self.last = t0
        self.decode_only = decode_only

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt itself
            self.prompt_seen = True
            return
        unsynced = time.perf_counter()
        synchronize(self.device)
        now = time.perf_counter()
        if not self.gen.tokens and not self.decode_only:
            self.gen.prefill_s_unsynced = unsynced - self.t0
            self.gen.prefill_s = self.gen.ttft_s = now - self.t0
        else:
            self.gen.decode_s.append(now - self.last)
        self.last = now
        self.gen.tokens.extend(int(t) for t in value.reshape(-1).tolist())

    def end(self) -> None:
        return


class HFBackend(Backend):
    """Keeps each prompt's ``DynamicCache`` (``reuses_cache``) where the cache can be cropped back,
    so every round decodes from one prefill."""

    name = "hf"

    def __init__(self, opts: CaptureOptions) -> None:
        tf = import_transformers()
        if opts.attn not in ATTN:
            raise UserError(
                f"--attn {opts.attn!r} is not available for --backend hf; use sdpa, eager or flash_attention_2"
            )
        self.device = resolve_device(opts.device)
        self.dtype = resolve_dtype(opts.dtype, self.device)
        impl = ATTN[opts.attn]
        model, self.label = load_model(tf, opts, impl, self.dtype)
        self.model = model.to(self.device).eval()
        self.config = self.model.config
        self.attn = impl
        self._scope = _AttentionScope()
        self._rf: Any = None
        self._on_step: StepCallback | None = None
        self._forwards = 0
        self._ctx = 0
        self._hooks = [
            self.model.register_forward_pre_hook(self._pre, with_kwargs=True),
            self.model.register_forward_hook(self._post),
        ]
        self._cache_cls = getattr(tf, "DynamicCache", None)
        self.reuses_cache = self._cache_cls is not None and hasattr(self._cache_cls, "crop")
        self._kept: dict[int, tuple[list[int], Any, list[int]]] = {}  # length -> (prompt, cache, tokens)
        self._cache_kwarg: str | None = None

    # --- annotations -----------------------------------------------------------------------------
    def _pre(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        # The first forward of a generate() call is the prefill; each later one decodes a token.
        # Counting tokens here is independent of how a transformers release names its cache kwargs.
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        t = int(ids.shape[-1]) if ids is not None else 1
        self._ctx += t
        if self._forwards == 0:
            name = ann.prefill(0, self._ctx, t)
        else:
            name = ann.decode(self._forwards, self._ctx)
        self._forwards += 1
        self._rf = record_function(name)
        self._rf.__enter__()

    def _post(self, module: Any, args: Any, output: Any) -> None:
        if self._rf is not None:
            self._rf.__exit__(None, None, None)
            self._rf = None
        if self._on_step is not None:
            self._on_step()

    # --- Backend ---------------------------------------------------------------------------------
    def max_context(self) -> int:
        return int(getattr(self.config, "max_position_embeddings", 2048))

    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    def model_facts(self) -> ModelFacts:
        c = self.config
        heads = int(c.num_attention_heads)
        head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
        return ModelFacts(
            name=f"hf/{self.label}",
            architecture=type(self.model).__name__,
            layers=int(c.num_hidden_layers),
            heads=heads,
            kv_heads=int(getattr(c, "num_key_value_heads", None) or heads),
            head_dim=head_dim,
            hidden=int(c.hidden_size),
            intermediate=int(getattr(c, "intermediate_size", 0)),
            vocab=int(c.vocab_size),
            dtype=str(self.model.dtype).removeprefix("torch."),
            dtype_bytes=torch.empty(0, dtype=self.model.dtype).element_size(),
            parameter_bytes=int(sum(p.numel() * p.element_size() for p in self.model.parameters())),
            attn=self.attn,
            max_context=self.max_context(),
        )

    def prefill_steps(self, context: int) -> int:
        return 1

    @torch.inference_mode()
    def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        return self._run(prompt, max_new_tokens, on_step)

    def _run(
        self,
        ids_list: list[int],
        max_new_tokens: int,
        on_step: StepCallback | None,
        *,
        cache: Any = None,
        first_step: int = 0,
        cached: int = 0,
    ) -> Generation:
        """One ``model.generate`` call, streamed. With a ``cache`` holding ``cached`` tokens, the first
        forward is decode step ``first_step`` (hooks number forwards from there)."""
        ids = torch.tensor([ids_list], dtype=torch.long, device=self.device)
        gen = Generation()
        self._forwards = first_step
        self._ctx = cached
        self._on_step = on_step
        synchronize(self.device)
        t0 = time.perf_counter()
        streamer = _Streamer(self.device, t0, gen, decode_only=first_step > 0)
        kwargs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "max_new_tokens": max_new_tokens,
            "min_new_tokens": max_new_tokens,
            "do_sample": False,
            "streamer": streamer,
            "pad_token_id": 0,
        }
        try:
            if cache is None:
                self.model.generate(**kwargs)
            else:
                self._generate_with_cache(kwargs, cache)
        finally:
            self._on_step = None
            if self._rf is not None:
                self._rf.__exit__(None, None, None)
                self._rf = None
        return gen

    def _generate_with_cache(self, kwargs: dict[str, Any], cache: Any) -> None:
        """transformers 5 takes the cache as ``cache`` (``past_key_values`` is deprecated); earlier
        releases reject that name before any forward runs, so the first call finds out which."""
        if self._cache_kwarg is None:
            try:
                self.model.generate(**kwargs, cache=cache)
                self._cache_kwarg = "cache"
                return
            except (TypeError, ValueError) as exc:
                if "cache" not in str(exc):
                    raise
                self._cache_kwarg = "past_key_values"
        self.model.generate(**kwargs, **{self._cache_kwarg: cache})

    @torch.inference_mode()
    def prepare(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        if not self.reuses_cache:
            return super().prepare(prompt, max_new_tokens, on_step)
        assert self._cache_cls is not None
        cache = self._cache_cls()
        g = self._run(prompt, 1, on_step, cache=cache)
        self._kept[len(prompt)] = (list(prompt), cache, list(g.tokens[:1]))
        return g

    @torch.inference_mode()
    def decode_from(self, prompt: list[int], start: int, steps: int, on_step: StepCallback | None = None) -> Generation:
        kept = self._kept.get(len(prompt))
        if kept is None or kept[0] != prompt or len(kept[2]) <= start:
            raise RuntimeError(f"no kept cache holds {start} generated tokens of this {len(prompt)}-token prompt")
        _, cache, tokens = kept
        extra = int(cache.get_seq_length()) - (len(prompt) + start)
        if extra > 0:  # back to the prompt and the first ``start`` generated tokens (negative: from the end)
            cache.crop(-extra)
        g = self._run(
            prompt + tokens[: start + 1], steps, on_step, cache=cache, first_step=start + 1, cached=len(prompt) + start
        )
        for i, tok in enumerate(g.tokens):
            if len(tokens) == start + 1 + i:
                tokens.append(tok)
        return g

    def release(self) -> None:
        self._kept.clear()

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._scope.restore()
