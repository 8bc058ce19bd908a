"""``make bench-analyze``: what a user waits for, measured as whole processes.

Every contender runs as its own process, timed from the outside (wall clock, CPU time of the
whole process tree, memory), in rounds that alternate the contenders: a slow spell of a shared
machine hits all of them. Memory is the process's own peak RSS (from the kernel) plus the peak of
its worker processes' summed private memory, sampled from /proc (a page a forked worker still
shares with its parent is in the parent's RSS, and counts once). Each line gives the median and
the min-max over the rounds.

* start-up: ``tracekit analyze`` of a 2 KB CPU-only trace against a bare ``python -c pass`` (and
  against importing the libraries it uses, alone);
* the V100 DDP fixture (54 MB of JSON): tracekit against HTA 0.5.0 (load + kernel breakdown, its
  imports included, as a user runs it) and against the floor;
* a ~1 GB trace (the fixture replicated with shifted times and ids): the same three;
* many tiny events (12.8 M, ~1.4 GB of JSON): tracekit against the floor, bytes per kept span at
  peak, cores used;
* per-step analysis: ``analyze --by step`` against plain ``analyze`` (goal: at most 1.5x its time),
  alternating, on the ~1 GB trace and on ~1 GB of vLLM decode steps (TraceLens's one-step trace
  replicated, KV tokens growing); ``python bench/bench_analyze.py --by-step`` runs this part alone
  (``--by-step-engine`` its second half).

The floor is what no JSON trace reader can beat on one core: ISA-L inflate plus a msgspec decode of
only ``ph``, ``ts``, ``dur`` and ``name`` of every event. tracekit runs on every core the process
may use, so its goal is the floor divided by the cores.

``python bench/bench_analyze.py startup`` runs the start-up section alone (``BENCH_STARTUP_ROUNDS``
rounds, default 15). Environment: ``BENCH_FIXTURES`` (default ../shared/fixtures/foreign),
``BENCH_ROUNDS`` (default 5), ``BENCH_BIG_ROUNDS`` (1), ``BENCH_BIG_GB`` (1.0),
``BENCH_TINY_EVENTS`` (12,800,000), ``BENCH_HTA_BIG`` (1: also run HTA on the ~1 GB trace, minutes).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = Path(os.environ.get("BENCH_FIXTURES", ROOT.parent / "shared" / "fixtures" / "foreign"))
FIXTURE = FIXTURES / "v100-ddp-training-216k-events.json.gz"
SMALL = FIXTURES / "cpu-only.pt.trace.json.gz"
OUT = ROOT / "bench" / "out"
PY = sys.executable
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
BIG_ROUNDS = int(os.environ.get("BENCH_BIG_ROUNDS", "1"))
BIG_BYTES = int(float(os.environ.get("BENCH_BIG_GB", "1.0")) * 1e9)
TINY_EVENTS = int(os.environ.get("BENCH_TINY_EVENTS", "12800000"))
HTA_BIG = os.environ.get("BENCH_HTA_BIG", "1") == "1"
HTA_TIMEOUT = int(os.environ.get("BENCH_HTA_TIMEOUT", "1800"))

FLOOR = r"""
import sys, msgspec
from isal import igzip
class E(msgspec.Struct):
    ph: str = ""
    ts: float = 0.0
    dur: float = 0.0
    name: str = ""
class Doc(msgspec.Struct):
    traceEvents: list[E]
p = sys.argv[1]
with open(p, "rb") as fh:
    gz = fh.read(2) == b"\x1f\x8b"
data = igzip.open(p, "rb").read() if gz else open(p, "rb").read()
first = data.lstrip()[:1]
events = msgspec.json.decode(data, type=Doc).traceEvents if first == b"{" else msgspec.json.decode(data, type=list[E])
print(len(events))
"""

# What the analyze path imports from other projects (numpy, typer, msgspec, ISA-L), and nothing
# else: the part of tracekit's start-up that is not tracekit's. Like ``analyze``, it holds OpenBLAS
# to one thread.
LIBRARIES = (
    "import os; os.environ.setdefault('OPENBLAS_NUM_THREADS', '1'); import numpy, typer, msgspec, isal.isal_zlib"
)
STARTUP_GOAL = 8.0  # tracekit analyze of a 2 KB trace against a bare interpreter

HTA = r"""
import contextlib, io, logging, sys, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
from hta.trace_analysis import TraceAnalysis
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    a = TraceAnalysis(trace_dir=sys.argv[1])
    _, kernels = a.get_gpu_kernel_breakdown(visualize=False)
print(len(kernels))
"""


@dataclass
class Run:
    wall: float
    cpu: float  # user + system seconds of the whole tree
    peak_mb: float  # the process's own peak RSS plus its workers' peak private memory


def _private_kb(pid: int) -> int:
    """The pages only ``pid`` holds (clean and dirty): a forked worker's own memory, without the
    pages it still shares with its parent, which the parent's peak RSS already counts."""
    kb = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for ln in fh:
                if ln.startswith(("Private_Clean:", "Private_Dirty:")):
                    kb += int(ln.split()[1])
    except OSError:
        pass
    return kb


def _children(pid: int) -> set[int] | None:
    """The direct children of ``pid``, from each of its threads' ``children`` file (a few reads);
    None where the kernel has no such file."""
    kids: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids  # gone already
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.update(int(c) for c in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        except (OSError, ValueError):
            continue
    return kids


def _descendants(root: int) -> set[int]:
    """The processes below ``root``. Read from the tree's own ``children`` files where the kernel
    has them: the sampler runs every 10 ms beside the process it measures, and scanning all of
    /proc instead took ~1 ms of CPU a scan (two scans a sample), which on a 2-core machine is taken
    from the measured process."""
    tree: set[int] = set()
    todo = [root]
    while todo:
        kids = _children(todo.pop())
        if kids is None:
            return _descendants_by_scan(root)
        kids -= tree
        tree |= kids
        todo.extend(kids)
    return tree - {root}


def _descendants_by_scan(root: int) -> set[int]:
    """The processes below ``root``, from every process's parent in /proc."""
    parents: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                parents[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, changed = {root}, True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return tree - {root}


def run_timed(cmd: list[str], timeout: float = 1800) -> Run | None:
    """Run ``cmd`` under GNU time, a small launcher (which adds the same ~1 ms fork and exec to
    every contender), and take its resource use from the kernel as time is reaped (``wait4``):
    wall time from start to exit, and CPU time of the whole tree to the microsecond (GNU time
    rounds it to 10 ms). Peak RSS is GNU time's report for the process (the kernel's, which also
    counts the memory of whatever forked it at the moment of exec: so not this big Python process,
    whose size read as the bare interpreter's peak when it launched contenders itself). Memory adds
    the highest summed private memory of the process's workers, sampled every 10 ms (their pages
    still shared with it are in its RSS already; reading its own would stall one that maps
    gigabytes)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, tempfile.TemporaryFile() as stderr:
        # stderr to a file, not a pipe: a chatty contender never blocks on it.
        return _run_timed(["/usr/bin/time", "-q", "-f", "%M", "-o", tf.name, *cmd], timeout, stderr, tf)


def _run_timed(cmd: list[str], timeout: float, stderr: IO[bytes], report: IO[str]) -> Run | None:
    t0 = time.perf_counter()
    # A session of its own, so a timeout can end the whole tree (workers included), not only its head.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT, start_new_session=True)
    # The exit is timed by a thread blocked in wait4(), not by the sampling loop: a loop that
    # noticed the exit at its next 10 ms tick put every wall time on a 10 ms grid (a bare
    # interpreter's 20 ms read as 21 or 31 ms, run to run).
    ended: list[tuple[float, int, resource.struct_rusage]] = []
    exited = threading.Event()

    def wait_for_exit() -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        ended.append((time.perf_counter(), os.waitstatus_to_exitcode(status), usage))
        exited.set()

    threading.Thread(target=wait_for_exit, daemon=True).start()
    workers_peak = 0
    while not exited.wait(0.01):
        below = _descendants(proc.pid)  # the measured process and, under it, its workers
        workers = below - _direct_children(proc.pid)
        workers_peak = max(workers_peak, sum(_private_kb(pid) for pid in workers))
        if time.perf_counter() - t0 > timeout:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            exited.wait()
            proc.returncode = ended[0][1]
            print(f"    timed out after {timeout:.0f} s")
            return None
    done, code, usage = ended[0]
    proc.returncode = code  # reaped above: Popen must not wait for it again
    stderr.seek(0)
    err = stderr.read().decode(errors="replace").strip()
    if code != 0:
        print(f"    failed ({code}): {err.splitlines()[-1] if err else ''}")
        return None
    maxrss_kb = int(report.read().split()[-1])
    return Run(done - t0, usage.ru_utime + usage.ru_stime, (maxrss_kb + workers_peak) / 1024)


def _direct_children(pid: int) -> set[int]:
    """The direct children of ``pid`` (GNU time's: the measured process itself)."""
    kids = _children(pid)
    if kids is None:
        return {p for p in _descendants_by_scan(pid) if _parent(p) == pid}
    return kids


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def rounds(contenders: dict[str, list[str]], n: int, timeout: float = 1800) -> dict[str, list[Run]]:
    got: dict[str, list[Run]] = {k: [] for k in contenders}
    for _ in range(n):
        for name, cmd in contenders.items():
            r = run_timed(cmd, timeout)
            if r is not None:
                got[name].append(r)
    return got


def med(runs: list[Run], f: str = "wall") -> float:
    return statistics.median(getattr(r, f) for r in runs)


def line(name: str, runs: list[Run]) -> str:
    if not runs:
        return f"  {name:<22} n/a"
    w = [r.wall for r in runs]
    cores = med(runs, "cpu") / med(runs) if med(runs) else 0.0
    return (
        f"  {name:<22} {statistics.median(w):8.3f} s ({min(w):.3f}-{max(w):.3f}, {len(w)} runs)"
        f"   peak memory {max(r.peak_mb for r in runs):7.0f} MB   cores used {cores:.2f}"
    )


# The console script a user types (``python -m tracekit`` runs the same function: tracekit.__main__).
TRACEKIT = Path(PY).with_name("tracekit")


def analyze_cmd(path: Path, *extra: str) -> list[str]:
    return [str(TRACEKIT), "analyze", str(path), "--format", "json", *extra]


def by_step(path: Path, n: int) -> None:
    """``--by step`` against plain ``analyze`` on the same trace, whole processes, alternating."""
    print(f"\nper-step analysis: {path.name}, {json_mb(path):.0f} MB of JSON")
    got = rounds(
        {"tracekit analyze": analyze_cmd(path), "tracekit analyze --by step": analyze_cmd(path, "--by", "step")}, n
    )
    for name, runs in got.items():
        print(line(name, runs))
    plain, steps = got["tracekit analyze"], got["tracekit analyze --by step"]
    if plain and steps:
        print(
            f"  --by step / plain: {med(steps) / med(plain):.2f}x the time (goal <= 1.5x), "
            f"{max(r.peak_mb for r in steps) / max(r.peak_mb for r in plain):.2f}x the peak memory"
        )


def spans_in(path: Path) -> int:
    code = (
        "import sys; from tracekit.trace.read import load_trace; t = load_trace(sys.argv[1]); "
        "print(len(t.spans) + len(t.kernels))"
    )
    r = subprocess.run([PY, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT, check=True)
    return int(r.stdout.strip())


def hta_dir(path: Path, tmp: Path) -> str:
    d = tmp / path.name.replace(".", "_")
    d.mkdir()
    (d / ("rank-0.json.gz" if path.name.endswith(".gz") else "rank-0.json")).symlink_to(path.resolve())
    return str(d)


def big_trace(target_bytes: int) -> Path:
    """The V100 fixture's events replicated with shifted timestamps and ids into ~target_bytes of JSON (gzipped)."""
    OUT.mkdir(parents=True, exist_ok=True)
    dst = OUT / f"v100-replicated-{target_bytes // 10**6}MB.json.gz"
    if dst.exists():
        return dst
    events = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    events = events["traceEvents"] if isinstance(events, dict) else events
    copies = max(1, round(target_bytes / sum(len(json.dumps(e)) + 2 for e in events)))
    ts = [e["ts"] for e in events if "ts" in e]
    span = max(ts) - min(ts) + 1000
    tmp = dst.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=1) as fh:
        fh.write('{"traceEvents": [\n')
        first = True
        for c in range(copies):
            for e in events:
                e2 = dict(e)
                if "ts" in e2:
                    e2["ts"] = e["ts"] + c * span
                if isinstance(e2.get("id"), int):
                    e2["id"] = e2["id"] + c * 10**9
                a = e2.get("args")
                if isinstance(a, dict):
                    a = dict(a)
                    for k in ("correlation", "External id"):
                        if isinstance(a.get(k), int):
                            a[k] = a[k] + c * 10**9
                    e2["args"] = a
                fh.write(("" if first else ",\n") + json.dumps(e2))
                first = False
        fh.write('\n], "distributedInfo": {"rank": 0}}\n')
    tmp.rename(dst)
    return dst


ENGINE_STEP = ROOT / "tests" / "data" / "engines" / "vllm-gptoss-decode-fullgraph-mi300x.json.gz"


def engine_trace(target_bytes: int) -> Path:
    """TraceLens's one-step vLLM decode trace (tests/data/engines) replicated into ~target_bytes of
    JSON, one engine step a copy, each copy's KV tokens 32 more than the last (a long decode of
    32 requests): the per-step path at thousands of steps, annotations, graph replays and all."""
    OUT.mkdir(parents=True, exist_ok=True)
    dst = OUT / f"vllm-decode-replicated-{target_bytes // 10**6}MB.json.gz"
    if dst.exists():
        return dst
    doc = json.loads(gzip.decompress(ENGINE_STEP.read_bytes()))
    events = doc["traceEvents"]
    copies = max(1, round(target_bytes / sum(len(json.dumps(e)) + 2 for e in events)))
    ts = [e["ts"] for e in events if "ts" in e]
    span = max(ts) - min(ts) + 1000
    tmp = dst.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=1) as fh:
        fh.write('{"traceEvents": [\n')
        first = True
        for c in range(copies):
            for e in events:
                e2 = dict(e)
                if "ts" in e2:
                    e2["ts"] = e["ts"] + c * span
                if isinstance(e2.get("id"), int):
                    e2["id"] = e2["id"] + c * 10**9
                if e2.get("cat") == "user_annotation" and e2.get("name", "").startswith("execute_"):
                    kv = 55086 + 32 * c
                    e2["name"] = f"execute_32_context_0(sq0sk0sqsq0sqsk0)_generation_32(sq32sk{kv}sqsq32sqsk{kv})"
                a = e2.get("args")
                if isinstance(a, dict):
                    a = dict(a)
                    for k in ("correlation", "External id"):
                        if isinstance(a.get(k), int):
                            a[k] = a[k] + c * 10**9
                    e2["args"] = a
                fh.write(("" if first else ",\n") + json.dumps(e2))
                first = False
        fh.write("\n]}\n")
    tmp.rename(dst)
    return dst


def tiny_trace(events: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    dst = OUT / f"tiny-{events // 10**5 / 10:g}M-events.json"
    if not dst.exists():
        from bench.make_tiny_events import write

        tmp = dst.with_suffix(".tmp")
        write(tmp, events)
        tmp.rename(dst)
    return dst


def json_mb(path: Path) -> float:
    if not path.name.endswith(".gz"):
        return path.stat().st_size / 1e6
    with gzip.open(path, "rb") as fh:
        return sum(len(b) for b in iter(lambda: fh.read(1 << 24), b"")) / 1e6


def versus_hta(label: str, path: Path, n: int, with_hta: bool, tmp: Path) -> None:
    print(f"\n{label}: {path.name}, {path.stat().st_size / 1e6:.1f} MB on disk, {json_mb(path):.0f} MB of JSON")
    contenders = {"tracekit analyze": analyze_cmd(path), "floor (1 core)": [PY, "-c", FLOOR, str(path)]}
    if with_hta:
        contenders["HTA 0.5.0"] = [PY, "-c", HTA, hta_dir(path, tmp)]
    got = rounds(contenders, n, HTA_TIMEOUT)
    for name, runs in got.items():
        print(line(name, runs))
    tk, fl, hta = got["tracekit analyze"], got["floor (1 core)"], got.get("HTA 0.5.0", [])
    if tk and hta:
        print(
            f"  vs HTA: {med(hta) / med(tk):.1f}x faster (median vs median; goal >= 10x), "
            f"{max(r.peak_mb for r in tk) / max(r.peak_mb for r in hta):.2f}x its peak memory (goal <= 0.5x)"
        )
    if tk and fl:
        cores = med(tk, "cpu") / med(tk)
        print(
            f"  vs the floor: {med(tk) / med(fl):.2f}x its time on {cores:.2f} cores "
            f"(goal: approach {1 / max(1, os.cpu_count() or 1):.2f}x, the floor over the cores)"
        )


def startup(n: int) -> None:
    """``python -c pass``, the libraries alone and ``tracekit analyze`` of a 2 KB trace, ``n``
    alternating rounds."""
    print("\nstart-up: a 2 KB CPU-only trace")
    got = rounds(
        {
            "python -c pass": [PY, "-c", "pass"],
            "its libraries alone": [PY, "-c", LIBRARIES],
            "tracekit analyze": analyze_cmd(SMALL),
        },
        n,
    )
    for name, runs in got.items():
        print(line(name, runs))
    if all(got.values()):
        bare = med(got["python -c pass"])
        ratios = [r.wall / bare for r in got["tracekit analyze"]]
        print(
            f"  tracekit / bare interpreter: {med(got['tracekit analyze']) / bare:.1f}x "
            f"({min(ratios):.1f}-{max(ratios):.1f}x against the bare median; goal < {STARTUP_GOAL:g}x); "
            f"importing its libraries alone: {med(got['its libraries alone']) / bare:.1f}x"
        )


def main() -> int:
    if sys.argv[1:] == ["startup"]:  # the start-up section alone (needs only the 2 KB fixture)
        if not SMALL.exists():
            print(f"bench-analyze: {SMALL} is absent; the benchmark needs ../shared/fixtures")
            return 0
        startup(int(os.environ.get("BENCH_STARTUP_ROUNDS", str(3 * ROUNDS))))
        return 0
    if not FIXTURE.exists():
        print(f"bench-analyze: {FIXTURE} is absent; the benchmark needs ../shared/fixtures")
        return 0
    if sys.argv[1:] == ["--by-step"]:  # the per-step section alone
        by_step(big_trace(BIG_BYTES), BIG_ROUNDS)
        by_step(engine_trace(BIG_BYTES), BIG_ROUNDS)
        return 0
    if sys.argv[1:] == ["--by-step-engine"]:  # its engine-trace half alone
        by_step(engine_trace(BIG_BYTES), BIG_ROUNDS)
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"bench-analyze, {time.strftime('%Y-%m-%d')}, {platform.machine()} with {cores} usable cores, "
        f"Python {platform.python_version()}; whole processes, medians (min-max)"
    )
    startup(3 * ROUNDS)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        versus_hta("V100 DDP fixture", FIXTURE, ROUNDS, True, tmp)
        versus_hta("~1 GB trace", big_trace(BIG_BYTES), BIG_ROUNDS, HTA_BIG, tmp)
        by_step(big_trace(BIG_BYTES), BIG_ROUNDS)
        by_step(engine_trace(BIG_BYTES), BIG_ROUNDS)
        tiny = tiny_trace(TINY_EVENTS)
        versus_hta("many tiny events", tiny, BIG_ROUNDS, False, tmp)
        n = spans_in(tiny)
        runs = rounds({"tracekit analyze": analyze_cmd(tiny)}, 1)["tracekit analyze"]
        if runs:
            peak = max(r.peak_mb for r in runs) * 1e6
            print(
                f"  kept spans {n:,}: {peak / n:.0f} bytes per kept span at peak (peak RSS + workers' private memory; goal <= 100)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
