"""The limit flags (``--device``, ``--peak-bandwidth``, ``--peak-flops``, ``--model-config``) of
``analyze``, ``report`` and ``advise``, checked before any trace is read and resolved once the
traces are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LimitFlags:
    device: str | None = None
    peak_bandwidth: float | None = None  # GB/s
    peak_flops: float | None = None  # TFLOP/s
    model_config: Path | None = None

    def given(self) -> bool:
        return any(x is not None for x in (self.device, self.peak_bandwidth, self.peak_flops, self.model_config))

    def check(self) -> None:
        """Raise the one-line UserError a bad flag deserves (unknown device, absurd number or config).
        The device table and the roofline load only when a flag is given: a plain ``analyze`` of a
        small trace does not pay for them."""
        if not self.given():
            return
        from tracekit.limits.model import from_config
        from tracekit.limits.roofline import choose_roof

        choose_roof(device=self.device, peak_bandwidth_gbps=self.peak_bandwidth, peak_tflops=self.peak_flops)
        if self.model_config is not None:
            from_config(self.model_config)
