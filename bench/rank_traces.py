"""Many rank files from one real trace, for the multi-trace tests and ``bench_scale``.

Each copy is the source trace with ``distributedInfo.rank`` set to its rank (or removed, so the
rank must come from the file name), its timestamps shifted by the rank (so no two files are the
same), and, for ranks given a ``stretch`` factor, every time and duration scaled about the trace's
start (a slower rank with the same structure). Written gzipped at a fast level.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import msgspec

try:
    from isal import igzip as _gz
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _gz = gzip  # type: ignore[no-redef]

SHIFT_US = 1000.0


def read_doc(src: Path) -> dict[str, Any]:
    raw = src.read_bytes()
    doc = msgspec.json.decode(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    if not isinstance(doc, dict):
        raise ValueError(f"{src}: expected a JSON object with traceEvents")
    return doc


def _moved(events: list[Any], shift: float, factor: float) -> list[Any]:
    t0 = min((e["ts"] for e in events if isinstance(e, dict) and isinstance(e.get("ts"), (int, float))), default=0.0)
    out = []
    for e in events:
        if isinstance(e, dict) and isinstance(e.get("ts"), (int, float)):
            e = {**e, "ts": t0 + (e["ts"] - t0) * factor + shift}
            if isinstance(e.get("dur"), (int, float)):
                e["dur"] = e["dur"] * factor
        out.append(e)
    return out


def write_rank(
    doc: dict[str, Any], path: Path, rank: int, *, stretch: float = 1.0, shift: bool = True, set_rank: bool = True
) -> Path:
    """One rank's copy of ``doc`` at ``path`` (gzipped when it ends in ``.gz``); ``shift=False``
    leaves the events as they are (three times faster, for many big copies)."""
    events = doc["traceEvents"]
    if shift or stretch != 1.0:
        events = _moved(events, rank * SHIFT_US if shift else 0.0, stretch)
    new = {**doc, "traceEvents": events}
    if set_rank:
        new["distributedInfo"] = {**(doc.get("distributedInfo") or {}), "rank": rank}
    else:
        new.pop("distributedInfo", None)
    data = msgspec.json.encode(new)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(_gz.compress(data, compresslevel=1) if path.name.endswith(".gz") else data)
    os.replace(tmp, path)
    return path


def make_rank_traces(
    src: Path,
    out: Path,
    ranks: int,
    *,
    stretch: dict[int, float] | None = None,
    set_rank: bool = True,
    name: str = "rank-{rank}.json.gz",
) -> list[Path]:
    """``ranks`` copies of ``src`` in ``out`` (``name`` formatted with the rank)."""
    out.mkdir(parents=True, exist_ok=True)
    doc = read_doc(src)
    stretch = stretch or {}
    return [
        write_rank(doc, out / name.format(rank=r), r, stretch=stretch.get(r, 1.0), set_rank=set_rank)
        for r in range(ranks)
    ]
