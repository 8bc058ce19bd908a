"""Optional bridge to HolisticTraceAnalysis (the ``[hta]`` extra) for GPU traces.

HTA 0.5.0 wants a folder of per-rank traces with a rank, raises on CPU-only traces, and some of
its analyzers break with pandas 3; each of those cases becomes one note and is skipped. Nothing
here prints: the notes go back to the caller.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import tempfile
import traceback
from pathlib import Path
from typing import Any

import msgspec

from tracekit.trace.model import Trace
from tracekit.trace.read import GZIP_MAGIC as MAGIC
from tracekit.trace.read import read_document


def _frame(df: Any, limit: int = 20) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = df.head(limit).to_dict(orient="records")
    return [{str(k): (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in records]


def hta_summary(path: Path, trace: Trace) -> tuple[dict[str, Any], list[str]]:
    """HTA's temporal breakdown, idle-time breakdown and kernel launch statistics, where it can run;
    and one note for each thing that could not."""
    notes: list[str] = []
    if not trace.device:
        notes.append(f"HTA skipped for {path}: CPU-only trace (HTA analyzes GPU activity only)")
        return {"skipped": "cpu-only trace"}, notes
    try:
        import pandas as pd
        from hta.trace_analysis import TraceAnalysis
    except ImportError:
        notes.append("HTA skipped: install the [hta] extra (pip install 'tracekit[hta]')")
        return {"skipped": "HolisticTraceAnalysis is not installed"}, notes
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
                notes.append(f"HTA {key} failed ({_why(exc)}); skipped")
                out[key] = {"error": _why(exc)}
    except Exception as exc:  # noqa: BLE001 - HTA could not load the trace at all
        notes.append(f"HTA could not load {path} ({exc.__class__.__name__}: {str(exc)[:120]}); skipped")
        out["error"] = f"{exc.__class__.__name__}: {str(exc)[:200]}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, notes


def _why(exc: BaseException) -> str:
    """One line on why HTA failed; for a bare ``assert`` (no message), the check that failed and
    where (HTA 0.5.0's temporal breakdown asserts its own figures are consistent)."""
    text = " ".join(str(exc).split())[:160]
    if text:
        return f"{exc.__class__.__name__}: {text}"
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return exc.__class__.__name__
    last = frames[-1]
    where = "/".join(Path(last.filename).parts[-3:])
    return f"{exc.__class__.__name__} at {where}:{last.lineno}: {(last.line or '').strip()[:120]}"


def _add_rank(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` with ``distributedInfo.rank`` set to 0 (gzipped if ``src`` is)."""
    raw = read_document(src)
    raw.doc.setdefault("distributedInfo", {})["rank"] = 0
    data = msgspec.json.encode(raw.doc)
    with open(src, "rb") as fh:
        gz = fh.read(2) == MAGIC
    dst.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
