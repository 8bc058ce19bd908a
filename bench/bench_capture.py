"""Profiler overhead on the default demo: profiled vs unprofiled decode step time, same run.

At each context length of the demo the built-in model generates ROUNDS times without the profiler
and ROUNDS times with it (alternating, so drifts of a shared machine hit both alike); the ratio of
the best median decode-step times is the overhead. Goal: at most 1.10.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")

from tracekit.capture import profiled  # noqa: E402
from tracekit.capture.backends.base import CaptureOptions  # noqa: E402
from tracekit.capture.backends.builtin import BuiltinBackend  # noqa: E402
from tracekit.capture.sweep import SweepOptions, synthetic_prompt  # noqa: E402

CONTEXTS = [int(x) for x in os.environ.get("BENCH_CONTEXTS", "128,1024,4096").split(",")]
TOKENS = int(os.environ.get("BENCH_TOKENS", "32"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
GOAL = 1.10


def main() -> int:
    be = BuiltinBackend(CaptureOptions())
    be.warmup()
    sweep = SweepOptions(contexts=CONTEXTS, tokens=TOKENS, profile_steps=8)
    print(
        f"bench-capture: builtin/tiny ({be.device}, {os.cpu_count()} cores), contexts {CONTEXTS}, {TOKENS} tokens, "
        f"{ROUNDS} rounds; profiler records {sweep.profile_steps} decode steps per pass"
    )
    print(f"{'context':>8} {'unprofiled ms':>14} {'profiled ms':>12} {'overhead':>9}   (best median decode step)")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for ctx in CONTEXTS:
            prompt = synthetic_prompt(ctx, be.vocab_size(), 0)
            plain, prof = [], []
            for r in range(ROUNDS):
                g = be.generate(prompt, TOKENS)
                plain.append(statistics.median(g.decode_s[: sweep.profile_steps]))
                g = profiled.record(
                    be,
                    lambda on_step, prompt=prompt: be.generate(prompt, TOKENS, on_step),
                    Path(tmp) / f"t{ctx}-{r}.json",
                    skip=0,
                    active=be.prefill_steps(ctx) + sweep.profile_steps,
                )
                prof.append(statistics.median(g.decode_s[: sweep.profile_steps]))
            a, b = min(plain) * 1e3, min(prof) * 1e3
            ratios.append(b / a)
            print(f"{ctx:>8} {a:>14.3f} {b:>12.3f} {b / a:>8.3f}x")
    geo = statistics.geometric_mean(ratios)
    print(
        f"profiler overhead (geometric mean over contexts): {geo:.3f}x; goal <= {GOAL:.2f}x: "
        f"{'met' if geo <= GOAL else 'missed'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
