"""The built-in model: KV-cached streaming equals a full forward pass."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tracekit.capture.builtin_model import LlamaModel
from tracekit.capture.presets import PRESETS

SHAPE = dataclasses.replace(
    PRESETS["tiny"],
    vocab=512,
    hidden=128,
    layers=2,
    heads=4,
    kv_heads=2,
    head_dim=32,
    intermediate=256,
    max_context=256,
)


def reference_logits(model: LlamaModel, ids: torch.Tensor) -> torch.Tensor:
    """Every position's logits from one causal pass over the whole sequence (no reuse of a cache)."""
    cache = model.new_cache(ids.shape[1])
    return model(ids, cache, all_logits=True)[0]


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize("impl", ["sdpa", "math"])
@pytest.mark.parametrize("chunk", [5, 64])
def test_cached_streaming_matches_full_forward(impl: str, chunk: int) -> None:
    torch.manual_seed(0)
    model = LlamaModel.random(SHAPE, impl, seed=3)  # type: ignore[arg-type]
    prompt = torch.randint(0, SHAPE.vocab, (1, 23))
    cache = model.new_cache(64)
    for s in range(0, prompt.shape[1], chunk):
        logits = model(prompt[:, s : s + chunk], cache)
    seq = prompt
    streamed = [logits[0, -1]]
    for _ in range(6):
        tok = streamed[-1].argmax().view(1, 1)
        seq = torch.cat([seq, tok], dim=1)
        streamed.append(model(tok, cache)[0, -1])
    full = reference_logits(model, seq)
    for i, lg in enumerate(streamed):
        pos = prompt.shape[1] - 1 + i
        torch.testing.assert_close(lg, full[pos], rtol=1e-4, atol=1e-4)
    assert cache.length == seq.shape[1]


def test_math_and_sdpa_agree() -> None:
    ids = torch.randint(0, SHAPE.vocab, (1, 30))
    a = reference_logits(LlamaModel.random(SHAPE, "math", seed=1), ids)
    b = reference_logits(LlamaModel.random(SHAPE, "sdpa", seed=1), ids)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_random_weights_are_seeded() -> None:
    a = LlamaModel.random(SHAPE, seed=7)
    b = LlamaModel.random(SHAPE, seed=7)
    c = LlamaModel.random(SHAPE, seed=8)
    assert torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_cache_overflow_is_refused() -> None:
    model = LlamaModel.random(SHAPE)
    cache = model.new_cache(8)
    with pytest.raises(ValueError, match="exceeds the cache"):
        model(torch.zeros(1, 9, dtype=torch.long), cache)


def test_presets_have_real_shapes() -> None:
    m = PRESETS["mistral-7b"]
    assert (m.layers, m.heads, m.kv_heads, m.head_dim, m.intermediate) == (32, 32, 8, 128, 14336)
    # Mistral-7B has 7.24 B parameters.
    assert 7.1e9 < m.parameter_count() < 7.3e9
    assert PRESETS["llama2-7b"].parameter_count() == pytest.approx(6.74e9, rel=0.01)

