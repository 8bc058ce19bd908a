"""Write a tiny random FP16 Llama model folder, offline: config.json, model.safetensors, tokenizer.json.

Used by ``make test-gpu`` so the hf and exllamav2 backends run on a real model folder without any
download. Shapes follow Llama (head dim 128, grouped-query attention) so exllamav2's kernels apply.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=2816)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--max-context", type=int, default=8192)
    a = ap.parse_args()
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    head_dim = a.hidden // a.heads
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "torch_dtype": "float16",
        "vocab_size": a.vocab,
        "hidden_size": a.hidden,
        "intermediate_size": a.intermediate,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": a.max_context,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    g = torch.Generator().manual_seed(0)

    def w(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * 0.02).to(torch.float16)

    t: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": w(a.vocab, a.hidden),
        "model.norm.weight": torch.ones(a.hidden, dtype=torch.float16),
        "lm_head.weight": w(a.vocab, a.hidden),
    }
    for i in range(a.layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = torch.ones(a.hidden, dtype=torch.float16)
        t[p + "post_attention_layernorm.weight"] = torch.ones(a.hidden, dtype=torch.float16)
        t[p + "self_attn.q_proj.weight"] = w(a.heads * head_dim, a.hidden)
        t[p + "self_attn.k_proj.weight"] = w(a.kv_heads * head_dim, a.hidden)
        t[p + "self_attn.v_proj.weight"] = w(a.kv_heads * head_dim, a.hidden)
        t[p + "self_attn.o_proj.weight"] = w(a.hidden, a.heads * head_dim)
        t[p + "mlp.gate_proj.weight"] = w(a.intermediate, a.hidden)
        t[p + "mlp.up_proj.weight"] = w(a.intermediate, a.hidden)
        t[p + "mlp.down_proj.weight"] = w(a.hidden, a.intermediate)
    save_file(t, str(out / "model.safetensors"), metadata={"format": "pt"})
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, a.vocab)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
            }
        )
    )
    print(out)


if __name__ == "__main__":
    main()
