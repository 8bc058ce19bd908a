"""``tracekit devices``: the device table tracekit compares achieved bandwidth and FLOP/s with."""

from __future__ import annotations

import json

import typer

from tracekit.cli.common import check_choice, out

NAME_WIDTH = 16


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
    head = ["device", "name", "TB/s", *DTYPES, "GB"]
    rows = [
        [
            d.key,
            d.name,
            f"{d.peak_bandwidth_tb_s:.4g}",
            *[f"{d.peak_tflops[dt]:.4g}" if dt in d.peak_tflops else "-" for dt in DTYPES],
            f"{d.memory_gb:.4g}",
        ]
        for d in table
    ]
    # Keys and figures never wrap or shorten (a cut "h100-s…" names no device): where they and
    # a name column of NAME_WIDTH (a name in two or three lines) do not fit, each device is a line
    # of its own, which reads better than names one word a line.
    widths = [max(len(r[i]) for r in [*rows, head]) for i in range(len(head)) if i != 1]
    if sum(widths) + NAME_WIDTH + 3 * len(head) + 1 > (out.rich.width or 0):
        out.print("Devices (--device NAME; dense peaks; sources: tracekit devices --format json)")
        for d, r in zip(table, rows):
            peaks = ", ".join(f"{dt} {r[3 + i]}" for i, dt in enumerate(DTYPES) if dt in d.peak_tflops)
            out.print(f"{d.key}: {d.name}; {r[2]} TB/s; TFLOP/s {peaks or '-'}; {r[-1]} GB")
        return
    t = Table(title="Devices (--device NAME; dense peaks; sources: tracekit devices --format json)")
    for i, name in enumerate(head):
        t.add_column(name, justify="left" if i < 2 else "right", no_wrap=i != 1)
    for r in rows:
        t.add_row(*r)
    out.print(t)
