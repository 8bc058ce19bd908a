"""tracekit analyze vs HolisticTraceAnalysis 0.5.0 on the same traces, in one run.

Each contender runs in its own child process (so peak RSS is its own), several rounds in turn
(``BENCH_ROUNDS``, default 5; the ~1 GB trace ``BENCH_BIG_ROUNDS``, default 1); the best and the
median time of each are printed: tracekit (load + attribute,
which includes the per-kernel breakdown), HTA (TraceAnalysis load + get_gpu_kernel_breakdown), and
the floor: merely gunzip + json.loads of the same file. Times exclude imports. Then the same for a
~1 GB trace made by replicating the V100 fixture with shifted timestamps and ids.
Goals: >= 10x faster than HTA, <= 0.5x its peak memory, tracekit <= 1.5x the floor.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "foreign" / "v100-ddp-training-216k-events.json.gz"
OUT = ROOT / "bench" / "out"
BIG_BYTES = int(float(os.environ.get("BENCH_BIG_GB", "1.0")) * 1e9)
HTA_TIMEOUT = int(os.environ.get("BENCH_HTA_TIMEOUT", "900"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
BIG_ROUNDS = int(os.environ.get("BENCH_BIG_ROUNDS", "1"))

CHILD = r"""
import json, resource, sys, time, os
which, path = sys.argv[1], sys.argv[2]
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if which == "tracekit":
    from tracekit.trace.load import load_trace
    from tracekit.analysis.analyze import analyze_trace
    base = rss_mb(); t = time.perf_counter()
    res = analyze_trace(load_trace(path))
    dt = time.perf_counter() - t
    extra = {"kernels": sum(k.count for k in res.kernels), "distinct": len(res.kernels)}
elif which == "floor":
    import gzip
    base = rss_mb(); t = time.perf_counter()
    with gzip.open(path, "rb") as fh:
        doc = json.loads(fh.read())
    dt = time.perf_counter() - t
    extra = {"events": len(doc["traceEvents"] if isinstance(doc, dict) else doc)}
else:
    import contextlib, io, logging
    logging.disable(logging.CRITICAL)
    from hta.trace_analysis import TraceAnalysis
    base = rss_mb(); t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        a = TraceAnalysis(trace_dir=os.path.dirname(path))
        _, kdf = a.get_gpu_kernel_breakdown(visualize=False)
    dt = time.perf_counter() - t
    extra = {"rows": int(len(kdf))}
print(json.dumps({"seconds": dt, "peak_rss_mb": rss_mb(), "rss_after_import_mb": base, **extra}))
"""


def child(which: str, path: Path, timeout: int = 1800) -> dict[str, float] | None:
    try:
        r = subprocess.run(
            [sys.executable, "-c", CHILD, which, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired:
        print(f"  {which}: timed out after {timeout} s")
        return None
    if r.returncode != 0:
        print(f"  {which}: failed ({r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode})")
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def big_trace(target_bytes: int) -> Path:
    """Replicate the fixture's events with shifted timestamps and ids into a ~target_bytes JSON (gzipped)."""
    OUT.mkdir(parents=True, exist_ok=True)
    dst = OUT / f"v100-replicated-{target_bytes // 10**6}MB.json.gz"
    if dst.exists():
        return dst
    events = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    events = events["traceEvents"] if isinstance(events, dict) else events
    text_per_copy = sum(len(json.dumps(e)) + 2 for e in events)
    copies = max(1, round(target_bytes / text_per_copy))
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
                if "id" in e2 and isinstance(e2["id"], int):
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
    print(f"  wrote {dst} ({copies} copies of {len(events):,} events)")
    return dst


def summarize(runs: list[dict[str, float]]) -> dict[str, float] | None:
    """Best and median time over the rounds; the highest peak RSS seen (memory is not noisy)."""
    if not runs:
        return None
    secs = sorted(r["seconds"] for r in runs)
    return {
        "seconds": secs[0],
        "median": statistics.median(secs),
        "rounds": len(secs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "rss_after_import_mb": min(r["rss_after_import_mb"] for r in runs),
    }


def row(name: str, r: dict[str, float] | None) -> str:
    if r is None:
        return f"  {name:<10} n/a"
    return (
        f"  {name:<10} best {r['seconds']:>7.2f} s  median {r['median']:>7.2f} s over {r['rounds']:.0f}   "
        f"peak RSS {r['peak_rss_mb']:>6.0f} MB (after imports {r['rss_after_import_mb']:.0f} MB)"
    )


def compare(label: str, path: Path, hta_timeout: int, rounds: int) -> None:
    size = path.stat().st_size
    with gzip.open(path, "rb") as fh:
        text = sum(len(b) for b in iter(lambda: fh.read(1 << 24), b""))
    print(f"\n{label}: {path.name}: {size / 1e6:.1f} MB gzipped, {text / 1e6:.0f} MB of JSON")
    runs: dict[str, list[dict[str, float]]] = {"tracekit": [], "floor": [], "hta": []}
    with tempfile.TemporaryDirectory() as d:
        # HTA reads a folder of rank traces.
        link = Path(d) / "rank-0.json.gz"
        link.symlink_to(path.resolve())
        # Rounds alternate the contenders, so a slow spell of this shared machine hits all of them.
        for _ in range(rounds):
            for which, target, timeout in (("tracekit", path, 1800), ("floor", path, 1800), ("hta", link, hta_timeout)):
                r = child(which, target, timeout=timeout)
                if r is not None:
                    runs[which].append(r)
    tk, floor, hta = (summarize(runs[k]) for k in ("tracekit", "floor", "hta"))
    print(row("tracekit", tk))
    print(row("floor", floor) + "   (gunzip + json.loads only)")
    print(row("HTA 0.5.0", hta))
    if tk and hta:
        print(
            f"  speed: tracekit {hta['seconds'] / tk['seconds']:.1f}x faster than HTA, best vs best "
            f"({hta['median'] / tk['median']:.1f}x median vs median; goal >= 10x); "
            f"peak memory {tk['peak_rss_mb'] / hta['peak_rss_mb']:.2f}x HTA's (goal <= 0.5x)"
        )
        grow_tk = tk["peak_rss_mb"] - tk["rss_after_import_mb"]
        grow_hta = hta["peak_rss_mb"] - hta["rss_after_import_mb"]
        print(
            f"  memory added by the work itself: tracekit {grow_tk:.0f} MB, HTA {grow_hta:.0f} MB "
            f"({grow_tk / grow_hta:.2f}x)"
        )
    if tk and floor:
        print(
            f"  tracekit / floor: {tk['seconds'] / floor['seconds']:.2f}x best vs best "
            f"({tk['median'] / floor['median']:.2f}x median; goal <= 1.5x); "
            f"peak memory {tk['peak_rss_mb'] / floor['peak_rss_mb']:.2f}x the floor's"
        )


def main() -> int:
    if not FIXTURE.exists():
        print(f"bench-analyze: {FIXTURE} is absent; the benchmark needs ../shared/fixtures")
        return 0
    if shutil.which("nproc"):
        print(f"bench-analyze on {os.cpu_count()} cores")
    compare("V100 DDP fixture", FIXTURE, HTA_TIMEOUT, ROUNDS)
    t = time.perf_counter()
    big = big_trace(BIG_BYTES)
    print(f"  (made in {time.perf_counter() - t:.0f} s)")
    compare("~1 GB trace", big, HTA_TIMEOUT, BIG_ROUNDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
