"""Golden comparison: every figure ``tracekit analyze`` and ``tracekit export`` give, recorded once
and compared after a change (a refactor or a speed-up must not move a single figure).

    python bench/golden.py record DIR [TRACE_OR_RUN ...]
    python bench/golden.py compare DIR [TRACE_OR_RUN ...]

Traces default to every fixture in ../shared/fixtures/foreign. For each trace it keeps the
``analyze --format json`` document, the per-kernel and per-step CSV, and, from ``export``, each
device event's category and rule plus the events tracekit adds. Everything goes through the
command line, so the record survives any internal rewrite. ``compare`` prints each difference
and exits 1 if there is any.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "foreign"


def _cli(*args: str) -> str:
    env = {**os.environ, "KINETO_LOG_LEVEL": "5"}
    r = subprocess.run(
        [sys.executable, "-m", "tracekit", *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip()}"
    return r.stdout


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _export_tags(path: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "e.json.gz"
        msg = _cli("export", str(path), "--out", str(out))
        if not out.exists():
            return {"error": msg}
        doc = json.loads(gzip.decompress(out.read_bytes()))
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    tags = []
    added = []
    for e in events:
        if not isinstance(e, dict):
            continue
        a = e.get("args")
        if isinstance(a, dict) and "tracekit.category" in a:
            tags.append([e.get("name"), e.get("ts"), a["tracekit.category"], a["tracekit.rule"]])
        if e.get("pid") == 2_000_000_000:
            added.append(e)
    return {"events": len(events), "tags": tags, "added": added}


def record_one(path: Path) -> dict[str, Any]:
    name = str(path)
    out: dict[str, Any] = {}
    text = _cli("analyze", name, "--format", "json")
    try:
        doc = json.loads(text)
        for t in doc["traces"]:
            t.pop("path", None)
        out["json"] = doc
    except json.JSONDecodeError:
        out["json"] = text
    out["kernels"] = sorted(_rows(_cli("analyze", name, "--format", "csv", "--by", "kernel"))[1:])
    out["steps"] = _rows(_cli("analyze", name, "--format", "csv", "--by", "step"))
    for r in out["steps"][1:]:
        r[0] = ""  # the trace path column
    out["export"] = _export_tags(path)
    return out


def record_run(run: Path) -> dict[str, Any]:
    text = _cli("report", str(run), "--format", "json", "--out", "-")
    try:
        doc: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        return {"error": text}
    doc.pop("run", None)
    return doc


def _runs(args: list[str]) -> list[Path]:
    return [Path(a) for a in args if Path(a).is_dir()]


def _traces(args: list[str]) -> list[Path]:
    if args:
        found: list[Path] = []
        for a in args:
            p = Path(a)
            found += sorted(p.glob("context-*.pt.trace.json.gz")) if p.is_dir() else [p]
        return found
    return sorted(FIXTURES.glob("*.json.gz"))


def _key(p: Path) -> str:
    return f"{p.parent.name}__{p.name}"


def _diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'before' if k in a else 'after'}")
            else:
                _diff(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items before, {len(b)} after")
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: {a!r} before, {b!r} after")


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in ("record", "compare"):
        print(__doc__)
        return 2
    mode, folder, rest = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    folder.mkdir(parents=True, exist_ok=True)
    problems = 0
    jobs = [(p, record_one) for p in _traces(rest)] + [(r, record_run) for r in _runs(rest)]
    for p, fn in jobs:
        got = fn(p)
        f = folder / f"{_key(p) if fn is record_one else 'report__' + p.name}.json"
        if mode == "record":
            f.write_text(json.dumps(got, indent=1, sort_keys=True))
            print(f"recorded {p}")
            continue
        before = json.loads(f.read_text())
        diffs: list[str] = []
        _diff(before, json.loads(json.dumps(got)), _key(p), diffs)
        problems += len(diffs)
        print(f"{'same' if not diffs else f'{len(diffs)} differences'}: {p}")
        for d in diffs[:20]:
            print(f"  {d}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
