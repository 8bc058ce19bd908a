"""Golden records: every figure ``analyze`` and ``export`` give on the committed traces, as recorded in
tests/data/golden by ``bench/golden.py record``, compared through the command line.

A change that moves a figure fails here. When the change is meant (a rule now classifies a kernel
differently, a new step reader finds steps), record again and commit the records with the reason:

    python bench/golden.py record tests/data/golden tests/data/foreign/*.json.gz
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import ROOT, fixture_path

GOLDEN_DIR = ROOT / "tests" / "data" / "golden"
COMMITTED = sorted(p.name for p in (ROOT / "tests" / "data" / "foreign").glob("*.json.gz"))


def _golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden", ROOT / "bench" / "golden.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _golden()


def _compare(before: Any, after: Any) -> tuple[list[str], list[str]]:
    diffs: list[str] = []
    added: list[str] = []
    golden.compare_record(before, after, "t", diffs, added)
    return diffs, added


# Four CLI processes a trace (analyze as JSON, by kernel, by step; export): seconds even for the tiny
# CPU-only trace, so every trace's comparison runs with the slow tests.
@pytest.mark.slow
@pytest.mark.parametrize("name", COMMITTED)
def test_figures_equal_the_golden_record(name: str) -> None:
    path = fixture_path(name)
    record = golden.record_file(GOLDEN_DIR, golden.key(path))
    assert record.exists(), f"no golden record for {name}: python bench/golden.py record tests/data/golden {path}"
    before = golden.read_record(record)
    after = json.loads(json.dumps(golden.record_one(path)))
    diffs, _ = _compare(before, after)
    assert not diffs, f"{len(diffs)} figures moved:\n" + "\n".join(diffs[:30])
    assert isinstance(after["json"], dict), after["json"]  # the trace analyzed, not an error recorded


def test_a_committed_trace_has_a_record_and_a_record_has_its_trace() -> None:
    recorded = sorted(p.name.removesuffix(".json.gz") for p in GOLDEN_DIR.glob("*.json.gz"))
    assert recorded == [f"foreign__{n}" for n in COMMITTED]


def test_the_contract_allows_added_fields_and_new_prose_never_a_changed_or_missing_figure() -> None:
    before = {
        "json": {"busy_us": 10.5, "window": {"name": "ProfilerStep#6"}, "headline": {"text": "old words"}},
        "kernels": [{"name": "b", "time_us": "2.0"}, {"name": "a", "time_us": "1.0"}],
        "steps": [{"step": "1", "time_us": "3.0"}],
    }
    later = {
        "json": {"busy_us": 10.5, "idle_us": 1.0, "window": {"name": "ProfilerStep#6"}, "headline": {"text": "new"}},
        "kernels": [{"name": "a", "time_us": "1.0", "share": "0.3"}, {"name": "b", "time_us": "2.0", "share": "0.7"}],
        "steps": [{"step": "1", "time_us": "3.0"}],
    }
    diffs, added = _compare(before, later)
    assert diffs == []
    assert set(added) == {"t.json.idle_us", "t.kernels[0].share", "t.kernels[1].share"}

    moved = json.loads(json.dumps(later))
    moved["json"]["busy_us"] = 10.500001
    moved["steps"] = []
    renamed = json.loads(json.dumps(later))
    renamed["json"]["window"] = {"label": "ProfilerStep#6"}
    assert _compare(before, moved)[0] == [
        "t.json.busy_us: 10.5 recorded, 10.500001 now",
        "t.steps: 1 items recorded, 0 now",
    ]
    assert _compare(before, renamed)[0] == ["t.json.window.name: recorded, now missing"]
    # A change of summation order moves the last bits of a float; that is not a moved figure.
    assert _compare({"x": 0.1 + 0.2 + 0.3}, {"x": 0.3 + 0.2 + 0.1})[0] == []


def test_records_from_before_the_keyed_rows_still_compare(tmp_path: Path) -> None:
    """A record written by the earlier golden.py (plain JSON, CSV rows as lists with the path first)
    compares against today's output: refactors in flight keep their before-records."""
    after = {
        "json": {},
        "kernels": [{"name": "k", "category": "gemm", "time_us": "1.5"}],
        "steps": [{"phase": "decode", "step": "1"}],
    }
    old = {
        "json": {},
        "kernels": [["/x/a.json.gz", "k", "gemm", "1.5"]],
        "steps": [["trace", "phase", "step"], ["", "decode", "1"]],
    }
    (tmp_path / "r.json").write_text(json.dumps(old))
    record = golden.record_file(tmp_path, "r")
    assert record.name == "r.json"
    assert _compare(golden.read_record(record), after) == ([], [])
    old["kernels"] = [["/x/a.json.gz", "k", "gemm", "9.9"]]
    assert _compare(old, after)[0] == ["t.kernels[0].time_us: '9.9' recorded, '1.5' now"]
