"""What ``--backend hf`` loads, and what it refuses: transformers imported offline, a preset's
small random-weight config, or a local model folder whose config and weights are checked before
and after transformers reads them (never a download)."""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tracekit.capture.backends.base import CaptureOptions
from tracekit.capture.presets import HF_PRESETS
from tracekit.errors import UserError


def load_model(tf: Any, opts: CaptureOptions, impl: str, dtype: torch.dtype) -> tuple[Any, str]:
    """The model ``opts`` names (``--model DIR``, else ``--preset``'s random weights, seeded by
    ``--seed``) with attention ``impl``, and its label for the manifest."""
    if not opts.model:
        config = preset_config(opts.preset)
        config._attn_implementation = impl
        torch.manual_seed(opts.seed)
        return tf.AutoModelForCausalLM.from_config(
            config, attn_implementation=impl, dtype=dtype
        ), f"random/{opts.preset}"
    path = check_model_dir(opts.model)
    try:
        with warnings.catch_warnings(), _quiet_transformers(tf):
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            model, info = tf.AutoModelForCausalLM.from_pretrained(
                str(path), attn_implementation=impl, dtype=dtype, local_files_only=True, output_loading_info=True
            )
    except (OSError, ValueError, ImportError) as exc:
        raise UserError(
            f"--model {opts.model}: transformers could not load it offline ({str(exc).splitlines()[0]})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - damaged or unsafe weights: one line, never a traceback
        raise UserError(_weights_problem(opts.model, exc)) from None
    _check_weights(opts.model, path, info)
    return model, path.name


def import_transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise UserError("--backend hf needs transformers: pip install 'tracekit[hf]'") from None
    return transformers


def preset_config(name: str) -> Any:
    tf = import_transformers()
    if name not in HF_PRESETS:
        raise UserError(f"unknown --preset {name!r} for --backend hf; use {', '.join(HF_PRESETS)} or give --model DIR")
    spec = dict(HF_PRESETS[name])
    arch = spec.pop("arch")
    cls = tf.LlamaConfig if arch == "llama" else tf.Qwen2Config
    return cls(**spec, tie_word_embeddings=False)


def check_model_dir(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise UserError(f"--model {path}: no such directory (give a local HF model folder; tracekit never downloads)")
    if not (p / "config.json").exists():
        raise UserError(f"--model {path}: no config.json here; a HF model folder holds config.json and *.safetensors")
    if not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")):
        raise UserError(f"--model {path}: no weights (*.safetensors) here; copy the model files into it")
    _check_config(path, p / "config.json")
    return p


# The shapes in a config.json, with their physical range: a negative layer count ended in an
# internal error inside transformers.
_SHAPES = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "head_dim",
)
_MAX_SHAPE = 1 << 24


def _check_config(model: str, f: Path) -> None:
    import json

    try:
        if f.stat().st_size > 4 << 20:
            raise UserError(f"--model {model}: config.json is over 4 MB; not a model's config")
        config = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"--model {model}: config.json is not readable JSON ({str(exc)[:120]})") from None
    if not isinstance(config, dict):
        raise UserError(f"--model {model}: config.json is not a JSON object")
    for key in _SHAPES:
        v = config.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= _MAX_SHAPE:
            raise UserError(
                f"--model {model}: config.json has {key} = {str(v)[:40]}; give a whole number from 1 to {_MAX_SHAPE:,}"
            )


def _check_weights(model: str, path: Path, info: dict[str, Any]) -> None:
    """Refuse a model whose weights files do not hold its weights: transformers fills what is
    missing with random values and only logs it, and a run of random weights would be labelled
    as that model."""
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if not missing and not mismatched:
        return
    files = ", ".join(sorted(f.name for f in [*path.glob("*.safetensors"), *path.glob("*.bin")])[:3])
    what = f"{len(missing)} of the model's weights are missing" if missing else ""
    if mismatched:
        what += ("; " if what else "") + f"{len(mismatched)} have the wrong shape"
    first = (missing or [str(m[0]) if isinstance(m, tuple) else str(m) for m in mismatched])[0]
    raise UserError(
        f"--model {model}: {files} does not match config.json ({what}, e.g. {str(first)[:80]}); "
        "transformers would fill them with random values: copy the model's own weights"
    )


def _weights_problem(model: str, exc: Exception) -> str:
    """Why the weights did not load: a pickle torch refused to run (no code ran), damaged
    safetensors, or what transformers said."""
    first = (str(exc).splitlines() or [""])[0]
    if isinstance(exc, pickle.UnpicklingError):
        return (
            f"--model {model}: its *.bin weights are a pickle that is not plain tensors; torch refused to run it "
            "(nothing in it ran). Use *.safetensors weights"
        )
    if exc.__class__.__name__ == "SafetensorError":
        return f"--model {model}: the *.safetensors weights are damaged ({first[:160]})"
    return f"--model {model}: transformers could not load it ({exc.__class__.__name__}: {first[:160]})"


@contextlib.contextmanager
def _quiet_transformers(tf: Any) -> Iterator[None]:
    """transformers' own load report (20 lines with raw ANSI colours) stays off the terminal:
    what matters in it, missing or mismatched weights, is ``_check_weights``'s one line."""
    logging = tf.utils.logging
    before = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(before)
