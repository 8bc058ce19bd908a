"""Golden comparison: every figure ``tracekit analyze``, ``export`` and ``report`` give, recorded once
and compared after a change (a refactor or a speed-up must not move a single figure).

    python bench/golden.py record DIR [TRACE_OR_RUN ...]
    python bench/golden.py compare DIR [TRACE_OR_RUN ...]

Traces default to every foreign fixture: the ones committed under tests/data/foreign and, where the
folder exists, the bigger ones in ../shared/fixtures/foreign. A run folder among the arguments adds
its ``report --format json``. For each trace the record keeps the ``analyze --format json``
document, the per-kernel and per-step CSV (as rows keyed by column), and, from ``export``, each
device event's category and rule plus the events tracekit adds. Everything goes through the command
line, so the record survives any internal rewrite. Records are written gzipped (``.json.gz``);
plain ``.json`` records from earlier versions are read too.

``compare`` holds the output to the schema contract (fields may be added, never renamed or
removed): a field or column that only the new output has is listed as an addition, not counted as
a difference; every recorded field must still be there with the same value (numbers to a relative
1e-9, which only a change of summation order moves). Prose (a headline sentence, a finding's
message, an error's wording) is not compared: its wording is free to change. ``compare`` prints
each difference and exits 1 if there is any. ``tests/test_golden.py`` runs the same comparison
against the records committed under tests/data/golden.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIRS = (ROOT / "tests" / "data" / "foreign", ROOT.parent / "shared" / "fixtures" / "foreign")

# Keys whose values are sentences for a reader, not figures.
PROSE = frozenset({"text", "message", "error", "kernels_from"})
REL_TOL = 1e-9


def _cli(*args: str) -> str:
    env = {**os.environ, "KINETO_LOG_LEVEL": "5"}
    r = subprocess.run(
        [sys.executable, "-m", "tracekit", *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip()}"
    return r.stdout


def _table(text: str) -> list[dict[str, str]] | str:
    """CSV as rows keyed by column, the trace's path left out (it names where the file was read)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or text.startswith("exit "):
        return text
    header = rows[0]
    return [{k: v for k, v in zip(header, r) if k != "trace"} for r in rows[1:]]


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
    kernels = _table(_cli("analyze", name, "--format", "csv", "--by", "kernel"))
    out["kernels"] = (
        sorted(kernels, key=lambda r: json.dumps(r, sort_keys=True)) if isinstance(kernels, list) else kernels
    )
    out["steps"] = _table(_cli("analyze", name, "--format", "csv", "--by", "step"))
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


def default_traces() -> list[Path]:
    """Every foreign fixture, each name once (the committed copy first)."""
    seen: dict[str, Path] = {}
    for folder in FIXTURE_DIRS:
        for p in sorted(folder.glob("*.json.gz")):
            seen.setdefault(p.name, p)
    return [seen[n] for n in sorted(seen)]


def _runs(args: list[str]) -> list[Path]:
    return [Path(a) for a in args if Path(a).is_dir()]


def _traces(args: list[str]) -> list[Path]:
    if args:
        found: list[Path] = []
        for a in args:
            p = Path(a)
            found += sorted(p.glob("context-*.pt.trace.json.gz")) if p.is_dir() else [p]
        return found
    return default_traces()


def key(p: Path) -> str:
    return f"{p.parent.name}__{p.name}"


def record_file(folder: Path, name: str) -> Path:
    """Where a record lives: ``NAME.json.gz``, or an earlier plain ``NAME.json`` where only that exists."""
    gz = folder / f"{name}.json.gz"
    plain = folder / f"{name}.json"
    return plain if plain.exists() and not gz.exists() else gz


def read_record(f: Path) -> Any:
    data = f.read_bytes()
    return json.loads(gzip.decompress(data) if f.suffix == ".gz" else data)


def write_record(f: Path, record: Any) -> None:
    text = json.dumps(record, indent=None, sort_keys=True, separators=(",", ":")).encode()
    f.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))


def _same_number(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def _as_rows(before: Any, after: Any, header_row: bool) -> Any:
    """An earlier record's CSV (lists; the path column first) as rows keyed by the columns ``after`` has."""
    if not (isinstance(before, list) and before and isinstance(before[0], list) and isinstance(after, list)):
        return before
    if header_row:
        header, rows = before[0], before[1:]
    else:
        header, rows = ["trace", *(after[0] if after else {})], before
    return [{k: v for k, v in zip(header, r) if k != "trace"} for r in rows]


def compare_record(before: Any, after: Any, name: str, out: list[str], added: list[str] | None = None) -> None:
    """``diff`` of one trace's record; the kernel table's rows are matched whatever their order."""
    if isinstance(before, dict) and isinstance(after, dict):
        before = dict(before)
        for table, header_row in (("kernels", False), ("steps", True)):
            if table in before:
                before[table] = _as_rows(before[table], after.get(table), header_row)
        kb, ka = before.get("kernels"), after.get("kernels")
        if isinstance(kb, list) and isinstance(ka, list) and all(isinstance(r, dict) for r in kb + ka):
            keys = sorted({k for r in kb for k in r})

            def order(r: dict[str, Any]) -> str:
                return json.dumps([r.get(k) for k in keys])

            before["kernels"] = sorted(kb, key=order)
            after = {**after, "kernels": sorted(ka, key=order)}
    diff(before, after, name, out, added)


def diff(before: Any, after: Any, where: str, out: list[str], added: list[str] | None = None) -> None:
    """Append to ``out`` each way ``after`` breaks the record ``before``; fields only ``after`` has go
    to ``added``."""
    if isinstance(before, dict) and isinstance(after, dict):
        for k in sorted(set(before) | set(after), key=str):
            if k in PROSE:
                continue
            if k not in after:
                out.append(f"{where}.{k}: recorded, now missing")
            elif k not in before:
                if added is not None:
                    added.append(f"{where}.{k}")
            else:
                diff(before[k], after[k], f"{where}.{k}", out, added)
    elif isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            out.append(f"{where}: {len(before)} items recorded, {len(after)} now")
        for i, (x, y) in enumerate(zip(before, after)):
            diff(x, y, f"{where}[{i}]", out, added)
    elif isinstance(before, bool) or isinstance(after, bool):
        if before is not after:
            out.append(f"{where}: {before!r} recorded, {after!r} now")
    elif isinstance(before, (int, float)) and isinstance(after, (int, float)):
        if not _same_number(float(before), float(after)):
            out.append(f"{where}: {before!r} recorded, {after!r} now")
    elif before != after:
        out.append(f"{where}: {before!r} recorded, {after!r} now")


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
        f = record_file(folder, key(p) if fn is record_one else "report__" + p.name)
        if mode == "record":
            write_record(f, got)
            print(f"recorded {p}")
            continue
        diffs: list[str] = []
        added: list[str] = []
        compare_record(read_record(f), json.loads(json.dumps(got)), key(p), diffs, added)
        problems += len(diffs)
        print(f"{'same' if not diffs else f'{len(diffs)} differences'}: {p}")
        for d in diffs[:20]:
            print(f"  {d}")
        if added:
            print(f"  added since the record (allowed): {', '.join(added[:10])}{' ...' if len(added) > 10 else ''}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
