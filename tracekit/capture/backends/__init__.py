"""Engines that tracekit can capture: the built-in model, HF transformers, ExLlamaV2.

A new engine is one module with a ``Backend`` subclass (see ``base``) and one line in ``BACKENDS``;
modules load only when their backend is asked for, so a missing extra costs nothing elsewhere.
"""

from __future__ import annotations

import importlib

from tracekit.capture.backends.base import Backend, CaptureOptions
from tracekit.errors import UserError

# name -> "module:class"
BACKENDS: dict[str, str] = {
    "builtin": "tracekit.capture.backends.builtin:BuiltinBackend",
    "hf": "tracekit.capture.backends.hf:HFBackend",
    "exllamav2": "tracekit.capture.backends.exllamav2:ExLlamaV2Backend",
}


def create_backend(opts: CaptureOptions) -> Backend:
    """Build the backend named in ``opts``; missing extras or devices raise ``UserError``."""
    where = BACKENDS.get(opts.backend)
    if where is None:
        raise UserError(f"unknown backend {opts.backend!r}; choose one of: {', '.join(BACKENDS)}")
    module, cls = where.split(":")
    backend: Backend = getattr(importlib.import_module(module), cls)(opts)
    return backend


__all__ = ["BACKENDS", "Backend", "CaptureOptions", "create_backend"]
