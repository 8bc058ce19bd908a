"""ExLlamaV2 backend (CUDA only): EXL2, GPTQ or FP16 model folders, streamed as its example does.

``ExLlamaV2StreamingGenerator.begin_stream_ex`` returns once the prompt's CUDA work is queued; the
example reads its timer right then. We record that unsynchronized reading and the synchronized
one. The attention core is every ``ExLlamaV2Attention._attn_*`` method (flash-attn, xformers,
SDPA, matmul paths) and the flash-attn functions the module calls, wrapped in
``tracekit::attention_core`` for the life of the backend and restored by ``close()``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.autograd.profiler import record_function

from tracekit import annotations as ann
from tracekit.capture.backends.base import Backend, CaptureOptions, Generation, StepCallback, synchronize
from tracekit.errors import UserError
from tracekit.manifest import ModelFacts

# --attn value -> (no_flash_attn, no_xformers, no_sdpa)
ATTN_FLAGS = {
    "flash": (False, True, True),
    "xformers": (True, False, True),
    "sdpa": (True, True, False),
    "matmul": (True, True, True),
}


def _scoped(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(name):
            return fn(*args, **kwargs)

    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


class _Patches:
    """Attribute patches that ``restore()`` undoes in reverse order."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, scope: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None or not callable(fn):
            return
        self._saved.append((owner, attr, fn))
        setattr(owner, attr, _scoped(scope, fn))

    def restore(self) -> None:
        for owner, attr, fn in reversed(self._saved):
            setattr(owner, attr, fn)
        self._saved.clear()


class ExLlamaV2Backend(Backend):
    """Keeps no KV cache between rounds (``reuses_cache`` is False): the streaming generator holds
    one sequence in one cache and reuses only a prefix of the prompt it processed last, which in a
    round-robin over contexts is always another one. Every round re-runs (and times) the prefill;
    on the GPUs exllamav2 runs on, that costs little. Untested here (CUDA only)."""

    name = "exllamav2"

    def __init__(self, opts: CaptureOptions) -> None:
        if not torch.cuda.is_available():
            raise UserError("--backend exllamav2 needs a CUDA GPU, and none is available here")
        if opts.attn not in ATTN_FLAGS:
            raise UserError(f"--attn {opts.attn!r} is not available for exllamav2; use flash, xformers, sdpa or matmul")
        if not opts.model:
            raise UserError("--backend exllamav2 needs --model DIR (an EXL2, GPTQ or FP16 model folder)")
        path = Path(opts.model).expanduser()
        if not (path / "config.json").exists():
            raise UserError(f"--model {opts.model}: no config.json here; give an EXL2, GPTQ or FP16 model folder")
        if opts.no_graphs:
            os.environ["EXLLAMA_NO_GRAPHS"] = "1"
        try:
            import exllamav2
            from exllamav2 import ExLlamaV2, ExLlamaV2Cache, ExLlamaV2Config, ExLlamaV2Tokenizer
            from exllamav2.generator import ExLlamaV2Sampler, ExLlamaV2StreamingGenerator
        except ImportError as exc:
            raise UserError(f"--backend exllamav2 needs exllamav2: pip install 'tracekit[exllamav2]' ({exc})") from None
        self.device = torch.device("cuda")
        config = ExLlamaV2Config(str(path))
        config.no_flash_attn, config.no_xformers, config.no_sdpa = ATTN_FLAGS[opts.attn]
        if opts.no_graphs:
            config.no_graphs = True  # the config also reads EXLLAMA_NO_GRAPHS; say it outright
        self.attn = opts.attn
        self.model = ExLlamaV2(config)
        self.cache = ExLlamaV2Cache(self.model, max_seq_len=config.max_seq_len, lazy=True)
        self.model.load_autosplit(self.cache)
        self.tokenizer = ExLlamaV2Tokenizer(config)
        self.generator = ExLlamaV2StreamingGenerator(self.model, self.cache, self.tokenizer)
        self.generator.set_stop_conditions([])
        self.settings = ExLlamaV2Sampler.Settings()
        self.settings.top_k = 1  # greedy
        self.config = config
        self.label = path.name
        self.version = getattr(exllamav2, "__version__", "?")
        self._patches = _Patches()
        self._patch_attention()

    def _patch_attention(self) -> None:
        from exllamav2 import attn as attn_mod
        from exllamav2.attn import ExLlamaV2Attention
        from exllamav2.mlp import ExLlamaV2MLP

        for name in dir(ExLlamaV2Attention):
            if name.startswith("_attn_"):
                self._patches.wrap(ExLlamaV2Attention, name, ann.ATTENTION_CORE)
            elif name.startswith("forward"):
                self._patches.wrap(ExLlamaV2Attention, name, "exllamav2::attention_block")
        for name in ("flash_attn_func", "flash_attn_with_kvcache", "flash_attn_varlen_func"):
            self._patches.wrap(attn_mod, name, ann.ATTENTION_CORE)
        self._patches.wrap(ExLlamaV2MLP, "forward", "exllamav2::mlp_block")

    def max_context(self) -> int:
        return int(self.config.max_seq_len)

    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    def model_facts(self) -> ModelFacts:
        c = self.config
        weight_bytes = 0
        for f in Path(c.model_dir).glob("*.safetensors"):
            weight_bytes += f.stat().st_size  # quantized sizes as stored: what a decode step reads
        return ModelFacts(
            name=f"exllamav2/{self.label}",
            engine_version=self.version,
            layers=int(c.num_hidden_layers),
            heads=int(c.num_attention_heads),
            kv_heads=int(c.num_key_value_heads),
            head_dim=int(c.head_dim),
            hidden=int(c.hidden_size),
            intermediate=int(getattr(c, "intermediate_size", 0)),
            vocab=int(c.vocab_size),
            dtype="float16",
            dtype_bytes=2,  # the FP16 KV cache
            parameter_bytes=weight_bytes,
            attn=self.attn,
            max_context=int(c.max_seq_len),
        )

    def prefill_steps(self, context: int) -> int:
        return 2  # begin_stream_ex, then the first stream_ex that consumes the last prompt token

    @torch.inference_mode()
    def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        ids = torch.tensor([prompt], dtype=torch.long)
        gen = Generation()
        synchronize(self.device)
        t0 = time.perf_counter()
        with record_function(ann.prefill(0, len(prompt) - 1, len(prompt) - 1)):
            self.generator.begin_stream_ex(ids, self.settings)
        gen.prefill_s_unsynced = time.perf_counter() - t0  # where the example reads its timer
        synchronize(self.device)
        gen.prefill_s = time.perf_counter() - t0
        if on_step is not None:
            on_step()
        # begin_stream_ex leaves the last prompt token for the first stream_ex call.
        for step in range(max_new_tokens):
            t = time.perf_counter()
            name = ann.prefill(1, len(prompt), 1) if step == 0 else ann.decode(step, len(prompt) + step)
            with record_function(name):
                res = self.generator.stream_ex()
            synchronize(self.device)
            dt = time.perf_counter() - t
            if step == 0:
                gen.prefill_s += dt  # the first token finishes the prompt
            else:
                gen.decode_s.append(dt)
            gen.tokens.extend(int(x) for x in res.get("chunk_token_ids", torch.empty(0)).reshape(-1).tolist())
            if on_step is not None:
                on_step()
        return gen

    def close(self) -> None:
        self._patches.restore()
