"""The limit flags, declared once for every command that compares with a device (analyze --by
step/kernel, report, advise), so each reads and says the same everywhere. ``LimitFlags.check``
validates them together, before any trace is read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tracekit.cli.common import Number


def _peak(flag: str, hi: float, what: str) -> Any:
    return typer.Option(
        flag,
        parser=Number(flag, 0.001, hi, integer=False),
        help=f"Device {what}, for a device the table lacks (replaces --device's).",
    )


DeviceFlag = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="The device to compare with, a name from 'tracekit devices' (default: the one the traces or the run name).",
    ),
]
PeakBandwidthFlag = Annotated[float | None, _peak("--peak-bandwidth", 1e6, "memory bandwidth in GB/s")]
PeakFlopsFlag = Annotated[float | None, _peak("--peak-flops", 1e7, "dense peak TFLOP/s, every dtype")]
ModelConfigFlag = Annotated[
    Path | None,
    typer.Option(
        "--model-config",
        help="A local Hugging Face config.json for the model facts (layers, heads, KV heads, ...).",
    ),
]
