"""The limit flags of every command that compares with a device (analyze --by step/kernel, report,
advise): each option's name and parser are declared once here, so every command parses and checks
them the same way (``LimitFlags.check``, before any trace is read). The help is each command's own,
since a flag means something a little different in each (advise's --device is the device the
traces were recorded on; --on is the one to compare with)."""

from __future__ import annotations

from typing import Any

import typer

from tracekit.cli.common import Number


def device(help: str) -> Any:
    return typer.Option("--device", help=help)


def peak_bandwidth(help: str) -> Any:
    return typer.Option("--peak-bandwidth", parser=Number("--peak-bandwidth", 0.001, 1e6, integer=False), help=help)


def peak_flops(help: str) -> Any:
    return typer.Option("--peak-flops", parser=Number("--peak-flops", 0.001, 1e7, integer=False), help=help)


def model_config(help: str) -> Any:
    return typer.Option("--model-config", help=help)
