"""Many traces: the same 48 rank traces analyzed with 1 worker (in-process, no Dask) and with 2
(an embedded Dask LocalCluster), and the driver's peak RSS for 24 vs 96 traces (goal: <= 1.25x).

The traces are copies of the V100 DDP fixture (216k events, 54 MB of JSON: read by the chunked
reader, as any big trace is), each with its own ``distributedInfo.rank`` (``rank_traces``).
Every figure is a whole ``tracekit analyze`` process (start, imports, cluster, output), timed from outside; rounds alternate the contenders (``BENCH_ROUNDS``, default 3) so a
slow spell of a shared machine hits both, and the median is printed with the min-max range.
Then one trace is timed in-process by stage (load, attribute, analyses), and the figures are
projected to 1,000 ranks of 500 MB of JSON each on N workers.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rank_traces import read_doc, write_rank  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "foreign" / "v100-ddp-training-216k-events.json.gz"
TINY = FIXTURE.with_name("cpu-only.pt.trace.json.gz")  # 2 kB: what a run costs besides the traces
OUT = ROOT / "bench" / "out"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
STAGE_ROUNDS = 7
TIMEOUT = 1800
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "TRACEKIT_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
ENV.pop("DASK_SCHEDULER_ADDRESS", None)

# The driver's own peak RSS: the CLI in this process, its output thrown away, then the high-water
# mark of its memory (VmHWM; Linux's ru_maxrss would carry this bench's own peak over fork and exec).
RSS_CHILD = r"""
import json, os, re, sys
sys.stdout = open(os.devnull, "w")
from tracekit.cli import main
rc = main(sys.argv[2:])
hwm = int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1))
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": rc, "peak_rss_mb": hwm / 1024}, fh)
"""

STAGES_CHILD = r"""
import json, statistics, sys, time
from tracekit.trace.read import load_trace, decoded_size
from tracekit.analysis.attribute import attribute
from tracekit.analysis.analyze import analyze_trace
path, rounds = sys.argv[1], int(sys.argv[2])
runs = []
for _ in range(rounds):
    t0 = time.perf_counter(); trace = load_trace(path)
    t1 = time.perf_counter(); att = attribute(trace)
    t2 = time.perf_counter(); analyze_trace(trace, attribution=att)
    t3 = time.perf_counter()
    runs.append({"load": t1 - t0, "attribute": t2 - t1, "analyses": t3 - t2, "task": t3 - t0})
out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
out["json_mb"] = decoded_size(path) / 1e6
print(json.dumps(out))
"""


def cli_seconds(args: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "tracekit", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"tracekit {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    return dt


def driver_rss_mb(args: list[str], tmp: Path) -> float:
    out = tmp / "rss.json"
    r = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(out), *args],
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    got = json.loads(out.read_text()) if out.exists() else {}
    if r.returncode != 0 or got.get("rc") != 0:
        raise SystemExit(f"driver run failed: {r.stderr.strip()[-300:]}")
    return float(got["peak_rss_mb"])


def spread(xs: list[float], unit: str, fmt: str = ".2f") -> str:
    return f"median {statistics.median(xs):{fmt}} {unit} (min {min(xs):{fmt}}, max {max(xs):{fmt}}, {len(xs)} rounds)"


def make_traces(tmp: Path, n: int) -> list[Path]:
    doc = read_doc(FIXTURE)
    all_dir = tmp / "all"
    all_dir.mkdir()
    # Only the rank differs: shifting 216k events per copy would triple the time to make them.
    return [write_rank(doc, all_dir / f"rank-{r:03d}.json.gz", r, shift=False) for r in range(n)]


def subset(tmp: Path, files: list[Path], n: int) -> Path:
    d = tmp / f"n{n}"
    d.mkdir()
    for f in files[:n]:
        os.link(f, d / f.name)
    return d


def main() -> int:
    if not FIXTURE.exists():
        print(f"bench-scale: {FIXTURE} is absent; the benchmark needs ../shared/fixtures")
        return 0
    cores = len(os.sched_getaffinity(0))
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(f"bench-scale, {now}, {platform.node()}: {cores} usable cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; machine shared with other jobs")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tracekit-bench-scale-") as d:
        tmp = Path(d)
        t = time.perf_counter()
        files = make_traces(tmp, 96)
        print(f"made 96 rank traces from {FIXTURE.name} in {time.perf_counter() - t:.0f} s")
        d24, d48, d96 = subset(tmp, files, 24), subset(tmp, files, 48), subset(tmp, files, 96)
        tiny = tmp / "tiny"
        tiny.mkdir()
        for i in range(2):
            (tiny / f"rank-{i}.json.gz").write_bytes(TINY.read_bytes())
        walls: dict[int, list[float]] = {1: [], 2: []}
        small: dict[int, list[float]] = {1: [], 2: []}
        rss: dict[int, list[float]] = {24: [], 96: []}
        for i in range(ROUNDS):
            for w in (1, 2) if i % 2 == 0 else (2, 1):
                walls[w].append(cli_seconds(["analyze", str(d48), "--workers", str(w), "--format", "json"]))
            for w in (1, 2) if i % 2 == 0 else (2, 1):
                small[w].append(cli_seconds(["analyze", str(tiny), "--workers", str(w), "--format", "json"]))
            for n, folder in ((24, d24), (96, d96)) if i % 2 == 0 else ((96, d96), (24, d24)):
                rss[n].append(driver_rss_mb(["analyze", str(folder), "--workers", "2", "--format", "json"], tmp))
        r = subprocess.run(
            [sys.executable, "-c", STAGES_CHILD, str(files[0]), str(STAGE_ROUNDS)],
            capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=TIMEOUT, check=True,
        )  # fmt: skip
        stages = json.loads(r.stdout)
    w1, w2 = statistics.median(walls[1]), statistics.median(walls[2])
    print(f"\n48 traces ({stages['json_mb']:.0f} MB of JSON each), whole `tracekit analyze` process:")
    print(f"  1 worker (in-process, no Dask): {spread(walls[1], 's')}")
    print(f"  2 workers (LocalCluster):       {spread(walls[2], 's')}")
    print(f"  speed-up: {w1 / w2:.2f}x (median vs median)")
    r24, r96 = max(rss[24]), max(rss[96])
    print("\ndriver peak RSS, 2 workers (the workers' memory is their own):")
    print(f"  24 traces: {spread(rss[24], 'MB', '.0f')}")
    print(f"  96 traces: {spread(rss[96], 'MB', '.0f')}")
    print(f"  ratio 96/24: {r96 / r24:.3f} (highest vs highest; goal <= 1.25)")
    task = stages["task"]
    per_mb = task / stages["json_mb"]
    share = {k: 100 * stages[k] / task for k in ("load", "attribute", "analyses")}
    print(
        f"\none trace in-process, median of {STAGE_ROUNDS}: {task:.3f} s = load {stages['load']:.3f} s "
        f"({share['load']:.0f}%: read, inflate, decode, columns) + attribute {stages['attribute']:.3f} s "
        f"({share['attribute']:.0f}%) + analyses {stages['analyses']:.3f} s ({share['analyses']:.0f}%); "
        f"{per_mb * 1000:.2f} ms per MB of JSON, {1 / per_mb:.0f} MB/s"
    )
    paired = [b - a for a, b in zip(small[1], small[2])]
    fixed = statistics.median(paired)
    print(f"fixed cost of the cluster (2 tiny traces, 2 workers minus 1, same round): {spread(paired, 's')}")
    print(f"\nprojection, 1,000 ranks x 500 MB of JSON: {per_mb * 500:.1f} s a rank, plus the fixed cost:")
    for n in (2, 16, 64, 256):
        waves = -(-1000 // n)
        total = waves * per_mb * 500 + max(0.0, fixed)
        print(
            f"  {n:>4} workers: {waves:>3} ranks each, {total / 60:5.1f} min, "
            f"reading {n / per_mb / 1000:4.1f} GB/s of JSON together"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    result = {
        "date": now,
        "host": platform.node(),
        "cores": cores,
        "walls": walls,
        "small": small,
        "rss": rss,
        "stages": stages,
    }
    (OUT / "bench_scale.json").write_text(json.dumps(result, indent=1))
    return 0 if r96 / r24 <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
