"""Why load biases a CPU profile, and what the thread count does about it (the capture's thread choice).

For each thread count (1 .. the cores in this process's affinity) and with 0 or 1 other processes
keeping a core busy, the built-in tiny model decodes from kept caches at the smallest and largest
demo context in alternating rounds: the median decode step (ms), and the attention share of a
profiled segment (attention time / step span, from tracekit's own analysis of the trace).

    python bench/bench_threads.py            # BENCH_CONTEXTS=128,4096 BENCH_ROUNDS=4 BENCH_STEPS=16

What it shows on a 2-core machine: with one core busy, two threads make every parallel operator
wait for the thread whose core the other process holds, so a step costs the same at any context
and the profiler charges the waits to whichever operator was open; one thread on the free core
keeps the context effect and an honest share.
"""

from __future__ import annotations

import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")

import torch  # noqa: E402

from tracekit.analysis.analyze import analyze_trace  # noqa: E402
from tracekit.capture import cpuload, profiled  # noqa: E402
from tracekit.capture.backends.base import CaptureOptions  # noqa: E402
from tracekit.capture.backends.builtin import BuiltinBackend  # noqa: E402
from tracekit.capture.sweep import synthetic_prompt  # noqa: E402
from tracekit.trace.read import load_trace  # noqa: E402

CONTEXTS = [int(x) for x in os.environ.get("BENCH_CONTEXTS", "128,4096").split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
STEPS = int(os.environ.get("BENCH_STEPS", "16"))


def _share(be: BuiltinBackend, prompt: list[int], path: Path) -> float:
    profiled.record(be, lambda on_step: be.decode_from(prompt, 0, 8, on_step), path, skip=0, active=8)
    gz = path.with_suffix(".json.gz")
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    res = analyze_trace(load_trace(gz))
    steps = [p for p in res.phases if p.phase == "decode" and p.span_us > 0]
    return statistics.fmean(
        (p.categories["attention"].time_us if "attention" in p.categories else 0.0) / p.span_us for p in steps
    )


def main() -> int:
    cpus = len(cpuload.affinity())
    be = BuiltinBackend(CaptureOptions())
    be.warmup()
    prompts = {c: synthetic_prompt(c, be.vocab_size(), 0) for c in CONTEXTS}
    for p in prompts.values():
        be.prepare(p, STEPS + 1)
    original = torch.get_num_threads()
    print(
        f"bench-threads: builtin/tiny, {cpus} cores in affinity, contexts {CONTEXTS}, {ROUNDS} rounds x {STEPS} steps"
    )
    print(
        f"{'busy cores':>10} {'threads':>7} {'others (cores)':>14}  "
        + "  ".join(f"{'ms@' + str(c):>9} {'attn@' + str(c):>9}" for c in CONTEXTS)
    )
    with tempfile.TemporaryDirectory() as tmp:
        for busy in (0, 1):
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
            try:
                time.sleep(0.3)
                for threads in range(1, cpus + 1):
                    torch.set_num_threads(threads)
                    a = cpuload.sample()
                    ms: dict[int, list[float]] = {c: [] for c in CONTEXTS}
                    share: dict[int, list[float]] = {c: [] for c in CONTEXTS}
                    for r in range(ROUNDS):
                        for c in CONTEXTS if r % 2 == 0 else reversed(CONTEXTS):
                            g = be.decode_from(prompts[c], 0, STEPS)
                            ms[c] += g.decode_s[2:]
                            share[c].append(_share(be, prompts[c], Path(tmp) / f"s{busy}{threads}{c}{r}.json"))
                    others = cpuload.others_cores(a, cpuload.sample())
                    cells = "  ".join(
                        f"{1000 * statistics.median(ms[c]):>9.2f} {100 * statistics.median(share[c]):>8.1f}%"
                        for c in CONTEXTS
                    )
                    print(f"{busy:>10} {threads:>7} {others if others is not None else float('nan'):>14.2f}  {cells}")
            finally:
                for h in hogs:
                    h.kill()
                    h.wait()
    torch.set_num_threads(original)
    return 0


if __name__ == "__main__":
    sys.exit(main())
