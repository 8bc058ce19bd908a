"""``tracekit devices``: the device table tracekit compares achieved bandwidth and FLOP/s with."""

from __future__ import annotations

import json

import typer

from tracekit.cli.common import check_choice, out


def devices_cmd(
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List the devices tracekit knows: peak DRAM bandwidth, dense peak TFLOP/s by dtype, memory,
    and the vendor document each figure comes from.

    \b
    Examples:
      tracekit devices
      tracekit devices --format json
    """
    from rich.table import Table

    from tracekit.limits.devices import DTYPES, devices

    check_choice(fmt, ("table", "json"), "--format")
    table = devices()
    if fmt == "json":
        print(json.dumps({"schema": "tracekit.devices/1", "devices": [d.to_json() for d in table]}, indent=2))
        return
    t = Table(title="Devices (dense peaks; sources: tracekit devices --format json)")
    t.add_column("device (--device)")
    t.add_column("name")
    t.add_column("TB/s", justify="right")
    for dt in DTYPES:
        t.add_column(dt, justify="right")
    t.add_column("GB", justify="right")
    for d in table:
        t.add_row(
            d.key,
            d.name,
            f"{d.peak_bandwidth_tb_s:.4g}",
            *[f"{d.peak_tflops[dt]:.4g}" if dt in d.peak_tflops else "-" for dt in DTYPES],
            f"{d.memory_gb:.4g}",
        )
    out.print(t)
