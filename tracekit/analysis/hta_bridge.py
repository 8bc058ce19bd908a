"""Optional bridge to HolisticTraceAnalysis (the ``[hta]`` extra) for GPU traces.

HTA 0.5.0 wants a folder of per-rank traces with a rank, raises on CPU-only traces, and some of
its analyzers break with pandas 3; each of those cases is reported in one line and skipped.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from tracekit.trace.model import Trace


def _frame(df: Any, limit: int = 20) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = df.head(limit).to_dict(orient="records")
    return [{str(k): (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in records]


def hta_summary(path: Path, trace: Trace, console: Console) -> dict[str, Any]:
    """HTA's temporal breakdown, idle-time breakdown and kernel launch statistics, where it can run."""
    if not trace.device:
        console.print(f"tracekit: HTA skipped for {path}: CPU-only trace (HTA analyzes GPU activity only)")
        return {"skipped": "cpu-only trace"}
    try:
        import pandas as pd
        from hta.trace_analysis import TraceAnalysis
    except ImportError:
        console.print("tracekit: HTA skipped: install the [hta] extra (pip install 'tracekit[hta]')")
        return {"skipped": "HolisticTraceAnalysis is not installed"}
    out: dict[str, Any] = {"pandas": pd.__version__}
    tmp = tempfile.mkdtemp(prefix="tracekit-hta-")
    try:
        # HTA reads a folder of per-rank traces; a trace without distributedInfo.rank needs one.
        name = "rank-0.json.gz" if str(path).endswith(".gz") else "rank-0.json"
        dst = Path(tmp) / name
        if trace.rank is None:
            _add_rank(Path(path), dst)
        else:
            os.symlink(Path(path).resolve(), dst)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            analysis = TraceAnalysis(trace_dir=tmp)
        steps: list[tuple[str, Any]] = [
            ("temporal_breakdown", lambda: analysis.get_temporal_breakdown(visualize=False)),
            ("idle_time_breakdown", lambda: analysis.get_idle_time_breakdown(visualize=False)[0]),
            (
                "kernel_launch_stats",
                lambda: next(iter(analysis.get_cuda_kernel_launch_stats(visualize=False).values())),
            ),
        ]
        for key, fn in steps:
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    out[key] = _frame(fn())
            except Exception as exc:  # noqa: BLE001 - one failing HTA analyzer must not end the analysis
                console.print(f"tracekit: HTA {key} failed ({exc.__class__.__name__}: {str(exc)[:120]}); skipped")
                out[key] = {"error": f"{exc.__class__.__name__}: {str(exc)[:200]}"}
    except Exception as exc:  # noqa: BLE001 - HTA could not load the trace at all
        console.print(f"tracekit: HTA could not load {path} ({exc.__class__.__name__}: {str(exc)[:120]}); skipped")
        out["error"] = f"{exc.__class__.__name__}: {str(exc)[:200]}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _add_rank(src: Path, dst: Path) -> None:
    import gzip

    import msgspec

    raw = src.read_bytes()
    gz = raw[:2] == b"\x1f\x8b"
    doc = msgspec.json.decode(gzip.decompress(raw) if gz else raw)
    if isinstance(doc, list):
        doc = {"traceEvents": doc}
    doc.setdefault("distributedInfo", {})["rank"] = 0
    data = msgspec.json.encode(doc)
    dst.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
