"""A Llama-shaped decoder in plain torch: random weights from a fixed seed, no downloads.

Token embedding, RMSNorm, rotary embeddings, grouped-query attention over a preallocated KV cache,
SwiGLU MLP, LM head. Each part of a layer runs inside a ``record_function`` annotation so traces
separate the attention core (whose work grows with context) from everything else.
"""

from __future__ import annotations

import math
from typing import Literal, cast

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.autograd.profiler import record_function

from tracekit import annotations as ann
from tracekit.capture.presets import ModelShape

AttnImpl = Literal["sdpa", "math"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with record_function(ann.NORM):
            var = x.float().pow(2).mean(-1, keepdim=True)
            return (x.float() * torch.rsqrt(var + self.eps)).to(x.dtype) * self.weight


def rotary_tables(shape: ModelShape, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    half = shape.head_dim // 2
    inv = 1.0 / (shape.rope_theta ** (torch.arange(0, half, device=device, dtype=torch.float32) / half))
    t = torch.arange(shape.max_context, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv)
    return freqs.cos(), freqs.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of the head dimension; x is [B, H, T, D]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c = cos.to(x.dtype)
    s = sin.to(x.dtype)
    return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)


class KVCache:
    """Preallocated keys and values for every layer: [layers, 1, kv_heads, max_context, head_dim]."""

    def __init__(self, shape: ModelShape, max_len: int, device: torch.device, dtype: torch.dtype) -> None:
        size = (shape.layers, 1, shape.kv_heads, max_len, shape.head_dim)
        self.k = torch.zeros(size, device=device, dtype=dtype)
        self.v = torch.zeros(size, device=device, dtype=dtype)
        self.length = 0
        self.max_len = max_len

    def reset(self) -> None:
        self.length = 0

    def nbytes(self) -> int:
        return int(self.k.numel() * self.k.element_size() * 2)


class Attention(nn.Module):
    def __init__(self, shape: ModelShape, impl: AttnImpl) -> None:
        super().__init__()
        self.shape = shape
        self.impl = impl
        h, d, kvh = shape.heads, shape.head_dim, shape.kv_heads
        self.q_proj = nn.Linear(shape.hidden, h * d, bias=False)
        self.k_proj = nn.Linear(shape.hidden, kvh * d, bias=False)
        self.v_proj = nn.Linear(shape.hidden, kvh * d, bias=False)
        self.o_proj = nn.Linear(h * d, shape.hidden, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        layer: int,
        cache: KVCache,
        pos: int,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        s = self.shape
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, s.heads, s.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        with record_function(ann.ROPE):
            c, sn = cos[pos : pos + t], sin[pos : pos + t]
            q = apply_rotary(q, c, sn)
            k = apply_rotary(k, c, sn)
        with record_function(ann.KV_CACHE_WRITE):
            cache.k[layer, :, :, pos : pos + t].copy_(k)
            cache.v[layer, :, :, pos : pos + t].copy_(v)
        length = pos + t
        with record_function(ann.ATTENTION_CORE):
            keys = cache.k[layer, :, :, :length]
            values = cache.v[layer, :, :, :length]
            out = self._core(q, keys, values, pos)
        out = out.transpose(1, 2).reshape(b, t, s.heads * s.head_dim)
        proj: torch.Tensor = self.o_proj(out)
        return proj

    def _core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos: int) -> torch.Tensor:
        """Attention of q [1, H, T, D] over the cache k, v [1, KVH, L, D] (L = pos + T)."""
        s = self.shape
        b, _, t, d = q.shape
        length = k.shape[2]
        mask = None
        if t > 1:
            # Query i sits at position pos + i and sees keys 0 .. pos + i.
            qpos = torch.arange(pos, pos + t, device=q.device).unsqueeze(1)
            kpos = torch.arange(length, device=q.device).unsqueeze(0)
            mask = kpos <= qpos  # [T, L]
        if self.impl == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=s.heads != s.kv_heads)
        # Explicit matmul + softmax (what engines fall back to without fused attention); the
        # grouped query heads are folded into the row dimension so the cache is never copied.
        g = s.heads // s.kv_heads
        q2 = q.reshape(b, s.kv_heads, g * t, d)
        scores = torch.matmul(q2, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
        if mask is not None:
            scores = scores.view(b, s.kv_heads, g, t, length).masked_fill(~mask, float("-inf"))
            scores = scores.view(b, s.kv_heads, g * t, length)
        probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
        return torch.matmul(probs, v).view(b, s.heads, t, d)


class MLP(nn.Module):
    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.gate = nn.Linear(shape.hidden, shape.intermediate, bias=False)
        self.up = nn.Linear(shape.hidden, shape.intermediate, bias=False)
        self.down = nn.Linear(shape.intermediate, shape.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.down(F.silu(self.gate(x)) * self.up(x))
        return y


class Block(nn.Module):
    def __init__(self, shape: ModelShape, impl: AttnImpl) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(shape.hidden, shape.norm_eps)
        self.attn = Attention(shape, impl)
        self.mlp_norm = RMSNorm(shape.hidden, shape.norm_eps)
        self.mlp = MLP(shape)


class LlamaModel(nn.Module):
    """The whole decoder. ``forward`` consumes ``tokens`` at positions ``pos..`` and fills the cache."""

    def __init__(self, shape: ModelShape, impl: AttnImpl = "sdpa") -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(shape.vocab, shape.hidden)
        self.blocks = nn.ModuleList([Block(shape, impl) for _ in range(shape.layers)])
        self.norm = RMSNorm(shape.hidden, shape.norm_eps)
        self.lm_head = nn.Linear(shape.hidden, shape.vocab, bias=False)
        self.register_buffer("cos", torch.empty(0), persistent=False)
        self.register_buffer("sin", torch.empty(0), persistent=False)

    @classmethod
    def random(
        cls,
        shape: ModelShape,
        impl: AttnImpl = "sdpa",
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> LlamaModel:
        # Initialise on the target device in the target dtype: a 7B preset never exists in fp32 on
        # the host. The values depend on the seed and the device's generator.
        dev = torch.device(device)
        gen = torch.Generator(device=dev).manual_seed(seed)
        with torch.device("meta"):
            model = cls(shape, impl)
        model = model.to_empty(device=dev).to(dtype=dtype)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02, generator=gen)
        cos, sin = rotary_tables(shape, torch.device(device))
        model.cos, model.sin = cos, sin
        return model.eval()

    def new_cache(self, max_len: int | None = None) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.shape, max_len or self.shape.max_context, p.device, p.dtype)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, cache: KVCache, *, all_logits: bool = False) -> torch.Tensor:
        """Run ``tokens`` [1, T] at positions ``cache.length ..``; return logits of the last (or every) position."""
        pos = cache.length
        t = tokens.shape[1]
        if pos + t > cache.max_len:
            raise ValueError(f"context {pos + t} exceeds the cache ({cache.max_len} tokens)")
        x = self.embed(tokens)
        blocks = cast(list[Block], list(self.blocks))
        for i, blk in enumerate(blocks):
            x = x + blk.attn(blk.attn_norm(x), i, cache, pos, self.cos, self.sin)
            x = x + blk.mlp(blk.mlp_norm(x))
        cache.length = pos + t
        x = self.norm(x if all_logits else x[:, -1:, :])
        with record_function(ann.LM_HEAD):
            logits: torch.Tensor = self.lm_head(x)
        return logits

    def parameter_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())
