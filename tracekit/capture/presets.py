"""Model shapes for the built-in Llama-shaped decoder (pure Python: reports read these too)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypedDict, get_type_hints


class Dims(TypedDict):
    """A decoder's layer shapes, named as ``ModelFacts`` (the manifest) and the limits' model
    facts name them."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int


SHAPES = tuple(get_type_hints(Dims))


@dataclass(frozen=True)
class ModelShape:
    name: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    max_context: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def dims(self) -> Dims:
        return Dims(
            layers=self.layers,
            hidden=self.hidden,
            heads=self.heads,
            kv_heads=self.kv_heads,
            head_dim=self.head_dim,
            intermediate=self.intermediate,
            vocab=self.vocab,
        )

    def parameter_count(self) -> int:
        return dense_params(**self.dims(), tied=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def dense_params(
    *, layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int, intermediate: int, vocab: int, tied: bool
) -> int:
    """Parameters of a Llama-shaped decoder: Q, K, V, O projections, a gated MLP (3 matrices), two
    norms per layer, the embedding and (unless tied) the output head."""
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = 3 * hidden * intermediate
    per_layer = attn + mlp + 2 * hidden
    return vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden


PRESETS: dict[str, ModelShape] = {
    # Small enough to run a sweep to 4k context in well under a minute on 2 CPU cores.
    "tiny": ModelShape(
        "tiny", vocab=8192, hidden=512, layers=4, heads=8, kv_heads=8, head_dim=64, intermediate=1408, max_context=8192
    ),
    # The real layer shapes of public models (random weights): for GPU users.
    "llama2-7b": ModelShape(
        "llama2-7b",
        vocab=32000,
        hidden=4096,
        layers=32,
        heads=32,
        kv_heads=32,
        head_dim=128,
        intermediate=11008,
        max_context=4096,
    ),
    "mistral-7b": ModelShape(
        "mistral-7b",
        vocab=32000,
        hidden=4096,
        layers=32,
        heads=32,
        kv_heads=8,
        head_dim=128,
        intermediate=14336,
        max_context=32768,
        rope_theta=1e6,
    ),
    "llama3-8b": ModelShape(
        "llama3-8b",
        vocab=128256,
        hidden=4096,
        layers=32,
        heads=32,
        kv_heads=8,
        head_dim=128,
        intermediate=14336,
        max_context=8192,
        rope_theta=500000.0,
    ),
}


# --backend hf without --model: small random-weight configs built offline, for tests and for
# trying the pipeline without a model (transformers config fields, plus the architecture).
_TINY_LLAMA: dict[str, Any] = {
    "arch": "llama",
    "vocab_size": 4096,
    "hidden_size": 256,
    "intermediate_size": 704,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}
HF_PRESETS: dict[str, dict[str, Any]] = {"tiny": _TINY_LLAMA, "tiny-qwen": {**_TINY_LLAMA, "arch": "qwen2"}}

# Each backend's presets, for --help and the messages that name them (exllamav2 needs --model).
BACKEND_PRESETS: dict[str, tuple[str, ...]] = {
    "builtin": tuple(PRESETS),
    "hf": tuple(HF_PRESETS),
    "exllamav2": (),
}


def presets_help() -> str:
    """Every backend's presets in one phrase: ``builtin: tiny, llama2-7b, ...; hf: tiny, tiny-qwen``."""
    return "; ".join(f"{b}: {', '.join(p)}" for b, p in BACKEND_PRESETS.items() if p)
