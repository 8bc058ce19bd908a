"""Many traces, in-process: path expansion, ranks, exposed communication, the merge, the CLI's
summary and failure handling without Dask (the Dask runs are in test_fleet_dask.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from tests.helpers import CPU_ONLY, H100, MI300X, RESNET_ROCM, ROOT, V100_DDP, fixture_path, run_cli
from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.attribute import attribute
from tracekit.analysis.ranks import communication_exposure, rank_of
from tracekit.analysis.result import AnalysisResult, CategoryTime
from tracekit.analysis.window import Window
from tracekit.errors import UserError
from tracekit.fleet.inputs import expand
from tracekit.fleet.merge import summarize
from tracekit.fleet.task import Failure, TaskOptions, TracePartial, analyze_file, memory_needed
from tracekit.trace.read import ReadOptions, load_trace

SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "analysis.schema.json").read_text())


def _touch(p: Path, text: str = "{}") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_expand_directories_globs_and_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    a = _touch(run / "context-000128.pt.trace.json.gz")
    _touch(run / "context-000128.enriched.json.gz")  # the Perfetto twin: not counted again
    _touch(run / "manifest.json")
    _touch(run / "report.json")
    b = _touch(run / "deep" / "er" / "rank-1.json")
    _touch(run / "notes.txt")
    c = _touch(tmp_path / "x" / "rank_0.json")
    got = expand([str(run), str(tmp_path / "x" / "*.json"), str(a)])  # a again: taken once
    assert got == [str(a), str(b), str(c)]
    missing = str(tmp_path / "gone.json")
    assert expand([missing]) == [missing]  # listed as failed later, like any bad trace
    with pytest.raises(UserError, match="no file|no \\*.json"):
        expand([str(tmp_path / "nothing-*.json")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no \\*.json or \\*.json.gz trace"):
        expand([str(tmp_path / "empty")])


@pytest.mark.slow  # V100_DDP is only in ../shared
def test_memory_estimate_follows_the_json_size(tmp_path: Path) -> None:
    small = fixture_path(MI300X)  # 9.7 MB of JSON: read whole
    big = fixture_path(V100_DDP)  # 54 MB: read in pieces
    chunked_from = ReadOptions().chunked_from
    assert 3 * 9.7e6 < memory_needed(str(small), chunked_from) < 4 * 9.7e6
    assert 54e6 < memory_needed(str(big), chunked_from) < 3 * 54e6
    assert memory_needed(str(tmp_path / "absent.json"), chunked_from) == 0


def test_rank_from_distributed_info_then_file_name() -> None:
    assert rank_of("/x/rank-3.json", 7) == (7, "distributedInfo")
    assert rank_of("/x/rank-3.json", None) == (3, "file name")
    assert rank_of("/x/profile_trace_rank_12.json.gz", None) == (12, "file name")
    assert rank_of("/job/rank5/trace.json", None) == (5, "file name")
    assert rank_of("/x/frank-3.json", None) == (None, None)
    assert rank_of("/x/trace.json", None) == (None, None)


def _naive_exposed(comm: list[tuple[float, float]], compute: list[tuple[float, float]]) -> float:
    """A sweep over every boundary: time covered by communication and by no compute."""
    points = sorted({t for s, e in comm + compute for t in (s, e)})
    total = 0.0
    for lo, hi in zip(points, points[1:]):
        mid = (lo + hi) / 2
        if any(s <= mid < e for s, e in comm) and not any(s <= mid < e for s, e in compute):
            total += hi - lo
    return total


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_exposed_communication_matches_a_sweep_on_a_real_training_trace() -> None:
    trace = load_trace(fixture_path(RESNET_ROCM))  # RCCL all-reduces beside convolutions, MI300X
    att = attribute(trace)
    res = analyze_trace(trace, attribution=att)
    cat = np.array(att.categories)[att.category]
    comm = [(float(s), float(e)) for s, e, c in zip(att.ts, att.end, cat) if c == "communication"]
    compute = [
        (float(s), float(e)) for s, e, c in zip(att.ts, att.end, cat) if c not in ("communication", "memcpy", "memset")
    ]
    got = communication_exposure(att, res.window.start_us, res.window.end_us)
    assert got == pytest.approx(_naive_exposed(comm, compute), rel=1e-6)  # sums of µs near 1e9
    assert 0 < got < res.categories["communication"].time_us  # partly hidden behind compute


@pytest.mark.slow  # V100_DDP is only in ../shared
def test_exposed_communication_on_v100_ddp_is_all_of_it() -> None:
    # In this DDP trace no kernel runs while NCCL's all-reduces do (checked pairwise by hand).
    p = analyze_file(str(fixture_path(V100_DDP)), TaskOptions())
    assert isinstance(p, TracePartial)
    assert p.rank == 1 and p.rank_source == "distributedInfo"
    assert p.exposed_communication_us == pytest.approx(p.communication_us) and p.communication_us > 300_000
    assert len(p.step_us) == 5 and len(p.result.kernels) == 20  # top kernels only


def _partial(
    rank: int | None, steps: list[float], *, busy: float = 10.0, comm: float = 0.0, start: float = 0.0
) -> TracePartial:
    cats = {"attention": CategoryTime(2.0, 1), "communication": CategoryTime(comm, 1 if comm else 0)}
    res = AnalysisResult(f"r{rank}", "gpu", Window("whole trace", start, 20.0), busy, 20.0 - busy, cats, [], [])
    return TracePartial(res, rank, "file name" if rank is not None else None, comm / 2, steps)


def test_summary_sums_and_the_rank_table() -> None:
    parts = [_partial(0, [10.0, 12.0]), _partial(1, [30.0], comm=4.0), _partial(2, [11.0]), _partial(None, [5.0])]
    # Ranks from file names only: no table unless the user says the traces are ranks of one job.
    refused = summarize(parts, [])
    assert refused.ranks is None and "pass --ranks" in refused.ranks_refused
    assert refused.to_json()["ranks"] is None and refused.to_json()["ranks_refused"]
    s = summarize(parts, [Failure("bad.json", "truncated")], ranks=True)
    assert s.traces == 4 and not s.ranks_refused and s.failed[0].path == "bad.json"
    assert s.busy_us == 40.0 and s.categories["attention"].time_us == 8.0 and s.categories["attention"].count == 4
    assert s.ranks is not None
    assert [r.rank for r in s.ranks.rows] == [0, 1, 2] and s.ranks.unranked == 1
    assert s.ranks.rows[0].step_us == 11.0  # median of its steps
    assert s.ranks.slowest_rank == 1 and s.ranks.skew == pytest.approx(30.0 / 11.0)
    assert s.ranks.rows[1].exposed_communication_us == 2.0 and s.ranks.rows[1].communication_us == 4.0
    doc = s.to_json()
    assert doc["ranks"]["slowest_rank"] == 1 and doc["failed"] == [{"path": "bad.json", "error": "truncated"}]
    assert summarize([_partial(0, [1.0]), _partial(0, [2.0])], [], ranks=True).ranks is None  # one rank: no table


def test_a_rank_claimed_twice_at_once_is_left_out_and_named() -> None:
    # Windows of one rank that follow one another are that rank's profiled windows: summed.
    s = summarize([_partial(0, [10.0]), _partial(0, [12.0], start=25.0), _partial(1, [11.0])], [], ranks=True)
    assert s.ranks is not None and [(r.rank, r.traces, r.busy_us) for r in s.ranks.rows] == [(0, 2, 20.0), (1, 1, 10.0)]
    assert not s.ranks_refused
    # Two windows of rank 0 at once, busier together (30 µs) than the 25 µs they span: two jobs;
    # the other ranks keep their rows.
    busy = [_partial(0, [10.0], busy=15.0), _partial(0, [12.0], busy=15.0, start=5.0)]
    s = summarize([*busy, _partial(1, [11.0]), _partial(2, [13.0])], [], ranks=True)
    assert s.ranks is not None and [(r.rank, r.traces) for r in s.ranks.rows] == [(1, 1), (2, 1)]
    assert "rank 0 by r0, r0" in s.ranks_refused and "left out of the per-rank table" in s.ranks_refused
    assert s.busy_us == 50.0  # the summary over traces still counts every trace
    # A copy of one window is two claims whatever its busy time.
    s = summarize([_partial(0, [10.0], busy=1.0), _partial(0, [10.0], busy=1.0), _partial(1, [11.0])], [], ranks=True)
    assert "rank 0 by r0, r0" in s.ranks_refused
    # Overlapping windows one device can hold (an engine's extend and decode traces): summed.
    calm = [_partial(0, [10.0], busy=5.0), _partial(0, [12.0], busy=5.0, start=5.0), _partial(1, [11.0])]
    s = summarize(calm, [], ranks=True)
    assert s.ranks is not None and [(r.rank, r.traces, r.busy_us) for r in s.ranks.rows] == [(0, 2, 10.0), (1, 1, 10.0)]
    assert not s.ranks_refused
    # One rank: no per-rank table, so nothing to leave out of it and nothing to say.
    assert summarize(busy, [], ranks=True).ranks_refused == ""


def test_single_gpu_engine_traces_get_no_rank_note() -> None:
    """Four world-size-1 engine traces, SGLang's extend and decode traces overlapping in time: one
    rank, so no per-rank table and no note (a reviewer found them named as claimed twice)."""
    r = run_cli("analyze", str(ROOT / "tests" / "data" / "engines"), "--format", "json", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["summary"]["ranks_refused"] is None
    assert "rank" not in r.stderr, r.stderr


def test_copies_of_a_rank_are_named_not_summed(tmp_path: Path) -> None:
    """Real traces: two copies of one that carries rank 34 (distributedInfo), and two others named
    as ranks 0 and 1 (--ranks): ranks 0 and 1 keep their rows, rank 34 is named on stderr."""
    for name, src in (("rank-0.json.gz", H100), ("rank-1.json.gz", MI300X)):
        (tmp_path / name).write_bytes(fixture_path(src).read_bytes())
    for copy in ("a", "b"):
        (tmp_path / copy).mkdir()
        (tmp_path / copy / "cpu.json.gz").write_bytes(fixture_path(CPU_ONLY).read_bytes())
    r = run_cli("analyze", str(tmp_path), "--ranks", "--format", "json", "--workers", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)["summary"]
    assert [row["rank"] for row in summary["ranks"]["rows"]] == [0, 1]
    assert "rank 34 by " in summary["ranks_refused"] and "cpu.json.gz" in summary["ranks_refused"]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracekit: ") and "rank 34" in lines[0], r.stderr


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_bad_traces_are_listed_and_the_others_finish(tmp_path: Path) -> None:
    src = fixture_path(MI300X)
    (tmp_path / "a.json.gz").symlink_to(src)
    (tmp_path / "b.json.gz").write_bytes(src.read_bytes()[:50_000])  # truncated mid-stream
    (tmp_path / "c.json").write_text("not json at all")
    r = run_cli("analyze", str(tmp_path), "--format", "json", "--workers", "1")
    assert r.returncode == 2, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert [Path(t["path"]).name for t in doc["traces"]] == ["a.json.gz"]
    failed = {Path(f["path"]).name: f["error"] for f in doc["summary"]["failed"]}
    assert set(failed) == {"b.json.gz", "c.json"} and "truncated" in failed["b.json.gz"]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("tracekit: error: ") for line in lines)
    # Every trace bad: one line each, nothing on stdout, as a single bad trace always did.
    r = run_cli("analyze", str(tmp_path / "c.json"))
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize("names", [[MI300X], [MI300X, H100]])
def test_one_trace_or_a_little_json_never_imports_dask(names: list[str]) -> None:
    # Two traces of ~10 MB of JSON each: less than starting a cluster costs, so they run here.
    code = (
        "import sys; from tracekit.cli import main; rc = main(['analyze', *sys.argv[1:], '--format', 'json']); "
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    paths = [str(fixture_path(n)) for n in names]
    r = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 []"


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_a_scheduler_address_in_the_environment_leaves_one_trace_here() -> None:
    """DASK_SCHEDULER_ADDRESS, left set for other tools, does not send a single trace to a cluster
    (here an address where nothing listens: using it would fail); several traces do go (tested
    with a real cluster in test_fleet_dask.py)."""
    code = (
        "import sys; from tracekit.cli import main; rc = main(['analyze', *sys.argv[1:], '--format', 'json']); "
        "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:1"}
    one = str(fixture_path(MI300X))
    r = subprocess.run([sys.executable, "-c", code, one], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 []"


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_progress_bar_on_request_and_conflicting_flags(tmp_path: Path) -> None:
    for name in ("rank-0.json.gz", "rank-1.json.gz"):  # copies: symlinks to one file count once
        (tmp_path / name).write_bytes(fixture_path(MI300X).read_bytes())
    r = run_cli("analyze", str(tmp_path), "--workers", "1", env={"TRACEKIT_PROGRESS": "1"})
    assert r.returncode == 0, r.stderr
    assert "2/2" in r.stderr and "failed 0" in r.stderr
    assert "2 traces" in r.stdout  # the summary table
    r = run_cli("analyze", str(tmp_path), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert r.returncode == 2 and "not both" in r.stderr
    r = run_cli("analyze", str(tmp_path), "--memory-limit", "4GB", "--scheduler", "tcp://127.0.0.1:1")
    assert r.returncode == 2 and "--memory-limit sizes the workers" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_traces_that_cannot_fit_any_worker_are_refused_before_running() -> None:
    from tracekit.fleet.cluster import WORKER_BASE, Capacity, _refusal

    cap = Capacity(threads=2, memory_limit=2**30, memory_resource=5e8)
    budget = 2**30 - WORKER_BASE
    assert _refusal(10**8, budget, cap) is None
    assert "MEMORY resource" in str(_refusal(6 * 10**8, budget, cap))
    assert "over the worker memory limit (1.1 GB)" in str(_refusal(9 * 10**8, budget, cap))
    assert _refusal(10**12, None, Capacity(2, 0, 0.0)) is None  # no limit, no resources: it runs
