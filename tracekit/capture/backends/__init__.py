"""Engines that tracekit can capture: the built-in model, HF transformers, ExLlamaV2."""

from __future__ import annotations

from tracekit.capture.backends.base import Backend, CaptureOptions
from tracekit.errors import UserError

BACKENDS = ("builtin", "hf", "exllamav2")


def create_backend(opts: CaptureOptions) -> Backend:
    """Build the backend named in ``opts``; missing extras or devices raise ``UserError``."""
    if opts.backend == "builtin":
        from tracekit.capture.backends.builtin import BuiltinBackend

        return BuiltinBackend(opts)
    if opts.backend == "hf":
        from tracekit.capture.backends.hf import HFBackend

        return HFBackend(opts)
    if opts.backend == "exllamav2":
        from tracekit.capture.backends.exllamav2 import ExLlamaV2Backend

        return ExLlamaV2Backend(opts)
    raise UserError(f"unknown backend {opts.backend!r}; choose one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "CaptureOptions", "create_backend"]
