"""Which files a ``tracekit analyze PATH...`` names.

A path is a trace file, a directory (searched recursively for ``*.json`` and ``*.json.gz``), or a
glob. Directories skip tracekit's own non-trace files (``manifest.json``, the report) and the
Perfetto-enriched twin of each raw trace, so a run folder counts every context once. A file named
outright is always taken, even when it is not a trace: analyzing it then lists it as failed.
"""

from __future__ import annotations

import glob
from pathlib import Path

from tracekit.errors import UserError
from tracekit.fsutil import REPORT_STEM
from tracekit.manifest import ENRICHED_SUFFIX, MANIFEST

SUFFIXES = (".json", ".json.gz")
_GLOB_CHARS = frozenset("*?[")


def _is_trace_name(p: Path) -> bool:
    name = p.name
    if not name.endswith(SUFFIXES) or name.startswith("."):
        return False
    return name != MANIFEST and not name.startswith(f"{REPORT_STEM}.") and not name.endswith(ENRICHED_SUFFIX)


def _in_directory(d: Path) -> list[Path]:
    found = sorted(p for p in d.rglob("*") if _is_trace_name(p) and p.is_file())
    if not found:
        raise UserError(f"{d}: no *.json or *.json.gz trace in this directory or below it")
    return found


def expand(args: list[str]) -> list[str]:
    """The trace files ``args`` name, in the order given (each directory's and glob's sorted), once each."""
    out: list[str] = []
    seen: set[str] = set()

    def take(p: Path) -> None:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            out.append(str(p))

    for arg in args:
        p = Path(arg)
        if p.is_dir():
            for f in _in_directory(p):
                take(f)
        elif p.exists() or not (_GLOB_CHARS & set(arg)):
            take(p)  # a missing file is listed as failed, like any other bad trace
        else:
            hits = [Path(h) for h in sorted(glob.glob(arg, recursive=True))]
            files = [f for h in hits for f in (_in_directory(h) if h.is_dir() else [h] if _is_trace_name(h) else [])]
            if not files:
                raise UserError(f"{arg}: no *.json or *.json.gz trace matches this pattern")
            for f in files:
                take(f)
    return out
