"""Many traces on Dask, for real: an embedded LocalCluster of 2 worker processes, and an external
``dask scheduler`` + 2 ``dask worker`` processes on 127.0.0.1 started here. Same JSON as
``--workers 1``; a truncated trace in the middle is listed under ``failed``; a worker killed in
the middle of a run loses no trace; a trace over the workers' memory limit is refused; Ctrl-C
exits 130 with what finished. The rank files are copies of a real MI300X training trace (RCCL
all-reduces), rank 3 stretched 1.2x."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench.rank_traces import make_rank_traces
from tests.helpers import RESNET_ROCM, ROOT, fixture_path, run_cli

pytestmark = pytest.mark.slow  # each test starts and stops Dask clusters

RANKS = 6
TIMEOUT = 120
ENV = {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "KINETO_LOG_LEVEL": "5"}


@pytest.fixture(scope="module")
def rank_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("ranks")
    return make_rank_traces(fixture_path(RESNET_ROCM), out, RANKS, stretch={3: 1.2})


@pytest.fixture(scope="module")
def run_dir(rank_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The six ranks and, sorted between rank-2 and rank-3, a truncated copy."""
    d = tmp_path_factory.mktemp("run")
    for f in rank_files:
        os.link(f, d / f.name)
    (d / "rank-2b.json.gz").write_bytes(rank_files[2].read_bytes()[:400_000])
    return d


def _rel(p: Path) -> str:
    """``p`` relative to the directory tracekit runs in (workers elsewhere must still find it)."""
    return os.path.relpath(p, ROOT)


@pytest.fixture(scope="module")
def in_process(run_dir: Path) -> str:
    r = run_cli("analyze", _rel(run_dir), "--format", "json", "--workers", "1", timeout=TIMEOUT)
    assert r.returncode == 2, r.stderr
    return r.stdout


def _check_summary(text: str, run_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(text)
    s = doc["summary"]
    assert s["traces"] == RANKS and len(doc["traces"]) == RANKS
    assert [f["path"] for f in s["failed"]] == [_rel(run_dir / "rank-2b.json.gz")]
    assert "truncated" in s["failed"][0]["error"]
    ranks = s["ranks"]
    assert [r["rank"] for r in ranks["rows"]] == list(range(RANKS))
    assert ranks["slowest_rank"] == 3 and ranks["skew"] == pytest.approx(1.2, rel=1e-3)
    assert all(0 < r["exposed_communication_us"] < r["communication_us"] for r in ranks["rows"])
    return doc


def test_local_cluster_gives_the_in_process_json(run_dir: Path, in_process: str) -> None:
    _check_summary(in_process, run_dir)
    r = run_cli(
        "analyze", _rel(run_dir), "--format", "json", "--workers", "2", "--memory-limit", "2GB", timeout=TIMEOUT
    )
    assert r.returncode == 2
    assert r.stdout == in_process
    # Only tracekit speaks on stderr: the failed trace, no Dask logs or warnings.
    failed = _rel(run_dir / "rank-2b.json.gz")
    assert r.stderr.strip().splitlines() == [f"tracekit: error: {failed}: " + _error(in_process)]


def _error(doc_text: str) -> str:
    return str(json.loads(doc_text)["summary"]["failed"][0]["error"])


@contextlib.contextmanager
def _external_cluster(tmp: Path, workers: int = 2) -> Iterator[tuple[str, dict[str, subprocess.Popen[bytes]]]]:
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1, random ports, run
    in ``tmp`` (not where tracekit runs, so relative paths would not resolve there)."""
    dask_cli = [sys.executable, "-m", "dask"]
    env = {**os.environ, **ENV}
    procs: list[subprocess.Popen[bytes]] = []
    named: dict[str, subprocess.Popen[bytes]] = {}
    sched_file = tmp / "scheduler.json"
    local = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0", "--no-dashboard"]

    def start(args: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(tmp / log, "wb") as fh:
            p = subprocess.Popen([*dask_cli, *args], stdout=fh, stderr=subprocess.STDOUT, cwd=tmp, env=env)
        procs.append(p)
        return p

    try:
        start(["scheduler", "--port", "0", "--scheduler-file", str(sched_file), *local], "scheduler.log")
        deadline = time.monotonic() + 60
        address = None
        while address is None:
            try:  # the scheduler may be halfway through writing the file
                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for i in range(workers):
            named[f"w{i}"] = start(
                ["worker", address, "--nthreads", "1", "--no-nanny", "--name", f"w{i}", "--memory-limit", "1GB", "--resources", "MEMORY=7e8",
                 "--death-timeout", "60", *local],
                f"worker{i}.log",
            )  # fmt: skip
        yield address, named
    finally:
        for p in reversed(procs):  # workers first: a worker whose scheduler left first retries it a while
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=15)


def test_external_cluster_same_json_and_a_killed_worker_loses_nothing(
    run_dir: Path, in_process: str, rank_files: list[Path], tmp_path: Path
) -> None:
    from distributed import Client

    many = tmp_path / "many"
    many.mkdir()
    for i in range(24):
        os.link(rank_files[i % RANKS], many / f"t{i:02d}-{rank_files[i % RANKS].name}")
    huge = many / "t99-huge.json"
    with open(huge, "wb") as fh:
        fh.truncate(8 * 2**30)  # sparse: refused from its size alone, never read
    with _external_cluster(tmp_path) as (address, workers), Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        # The address from the environment, as Dask's own tools take it: the same JSON as in-process.
        r = run_cli("analyze", _rel(run_dir), "--format", "json", env={**ENV, "DASK_SCHEDULER_ADDRESS": address})
        assert r.returncode == 2, r.stderr
        assert r.stdout == in_process
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracekit", "analyze", str(many), "--scheduler", address, "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, **ENV},
        )
        try:
            victim = None
            deadline = time.monotonic() + TIMEOUT
            while victim is None and proc.poll() is None and time.monotonic() < deadline:
                for worker, keys in client.processing().items():
                    if any(str(k).startswith("tracekit-analyze") for k in keys):
                        victim = worker
                        break
                else:
                    time.sleep(0.02)
            assert victim is not None, "the run ended before a worker was seen analyzing"
            name = client.scheduler_info()["workers"][victim]["name"]
            workers[name].kill()  # SIGKILL mid-task: its traces must run again on the other worker
            out, err = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert workers[name].returncode == -signal.SIGKILL
    assert proc.returncode == 2, err.decode()  # 2: the huge trace was refused
    doc = json.loads(out)
    assert doc["summary"]["traces"] == 24
    assert [(Path(f["path"]).name, "over the worker memory limit" in f["error"]) for f in doc["summary"]["failed"]] == [
        ("t99-huge.json", True)
    ]
    expected = {Path(t["path"]).name: t for t in json.loads(in_process)["traces"]}
    for t in doc["traces"]:
        source = Path(t["path"]).name.split("-", 1)[1]
        assert {**t, "path": ""} == {**expected[source], "path": ""}


def test_ctrl_c_cancels_and_prints_what_finished(rank_files: list[Path], tmp_path: Path) -> None:
    n = 30
    for i in range(n):
        os.link(rank_files[i % RANKS], tmp_path / f"t{i:02d}.json.gz")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracekit", "analyze", str(tmp_path), "--workers", "2", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, **ENV, "TRACEKIT_PROGRESS": "1"},
        start_new_session=True,  # its own process group, which a terminal's Ctrl-C reaches whole
    )
    err = bytearray()

    def read_stderr() -> None:
        assert proc.stderr is not None
        while chunk := os.read(proc.stderr.fileno(), 4096):
            err.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            done = [int(m) for m in re.findall(rb"(\d+)/%d" % n, bytes(err))]
            if done and max(done) >= 3:
                break
            time.sleep(0.05)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "no worker processes"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.stdout is not None
        out = proc.stdout.read()  # stderr is the reader's
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err.decode(errors="replace"))  # the bar's terminal codes
    assert proc.returncode == 130, text
    doc = json.loads(out)
    s = doc["summary"]
    assert s["interrupted"] is True and 3 <= s["traces"] < n
    assert s["traces"] + len(s["failed"]) + s["cancelled"] == n
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1].startswith("tracekit: interrupted: ")
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"workers left running: {alive}"


def test_a_cluster_that_cannot_unpickle_the_task_is_recognized_by_the_error_s_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task whose module the cluster lacks (as a cluster without tracekit lacks tracekit's) fails
    as Dask makes it fail: a RuntimeError caused by the import error, which is what the fleet
    reads (its type, not its wording)."""
    from distributed import Client

    from tracekit.fleet.cluster import _cannot_load

    here = tmp_path / "client-only"
    here.mkdir()
    (here / "only_here.py").write_text("def task(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(here))
    import only_here  # type: ignore[import-not-found]

    with _external_cluster(tmp_path, workers=1) as (address, _), Client(address, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        client.wait_for_workers(1, timeout=TIMEOUT)
        fut = client.submit(only_here.task, 1, pure=False)
        with pytest.raises(RuntimeError):
            fut.result(timeout=TIMEOUT)
        assert _cannot_load(fut.exception())
        assert not _cannot_load(RuntimeError("deserialization of something else")) and not _cannot_load(None)
