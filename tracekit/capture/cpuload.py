"""Other processes' CPU use, and how many threads this process can use without waiting on them.

Why it matters: torch runs an operator's parallel region on all its intra-op threads and waits
for the slowest. When another process keeps one of two cores busy, the thread on that core runs
only when the scheduler gives it a slice (milliseconds), so every parallel operator waits for it.
On the tiny model's decode step the parallel operator is attention (the CPU flash-attention
kernel splits heads over threads; the matrix-vector products mostly do not), so the waits land
there and attention's share of the step grows several-fold (``make bench-threads``; figures in
docs/performance.md). The profile is biased, not only noisy, so no interval could fix it. The
sweep therefore picks its thread count
from the cores that are actually free, within the process's affinity, before the sweep and again
between rounds, and never uses more threads than that.

Load is read from ``/proc/stat`` (busy time of the CPUs this process may run on) minus this
process's own CPU time: what is left is everyone else's. Where ``/proc`` is absent (macOS,
Windows) nothing is measured and the thread count is left as torch chose it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tracekit.cores import affinity
from tracekit.manifest import BackgroundLoad

# A core counts as free when other processes use less than this share of it...
FREE_MARGIN = 0.25
# ...the load is "high" (flagged in the report) from this many cores of others' use, or a quarter
# of the affinity on a large machine...
HIGH_CORES = 0.5
# ...and a capture is "too busy to measure honestly" when even one thread cannot have a core.
TOO_BUSY_FREE = 0.75

_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class CpuSample:
    at: float  # monotonic seconds
    busy_s: float  # busy time summed over the sampled CPUs since boot
    own_s: float  # this process's CPU time (every thread)


def _busy_seconds(cpus: list[int]) -> float | None:
    try:
        text = _STAT.read_text()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    wanted = {f"cpu{c}" for c in cpus}
    busy = 0
    seen = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in wanted:
            continue
        v = [int(x) for x in parts[1:9]] + [0] * max(0, 8 - len(parts[1:9]))
        user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
        # Steal is time a hypervisor gave this virtual CPU to someone else: not free either.
        busy += user + nice + system + irq + softirq + steal
        seen += 1
    return busy / hz if seen else None


def sample(cpus: list[int] | None = None) -> CpuSample | None:
    busy = _busy_seconds(cpus if cpus is not None else affinity())
    if busy is None:
        return None
    return CpuSample(time.monotonic(), busy, time.process_time())


def others_cores(a: CpuSample | None, b: CpuSample | None) -> float | None:
    """Cores other processes kept busy between two samples (0.0 .. number of CPUs sampled)."""
    if a is None or b is None or b.at - a.at < 0.05:
        return None
    others = (b.busy_s - a.busy_s) - (b.own_s - a.own_s)
    return max(0.0, others / (b.at - a.at))


def measure(seconds: float = 0.5, cpus: list[int] | None = None) -> float | None:
    """Others' load over ``seconds`` while this process sleeps."""
    a = sample(cpus)
    if a is None:
        return None
    time.sleep(seconds)
    return others_cores(a, sample(cpus))


def free_threads(others: float | None, cpus: int) -> int | None:
    """Threads that fit on the cores left free (at least 1, at most ``cpus``); None when unknown."""
    if others is None:
        return None
    free = cpus - others
    return max(1, min(cpus, math.floor(free + FREE_MARGIN)))


def is_high(others: float, cpus: int) -> bool:
    return others >= max(HIGH_CORES, 0.25 * cpus)


def is_too_busy(others: float, cpus: int) -> bool:
    return cpus - others < TOO_BUSY_FREE


def set_threads(n: int | None) -> int:
    """Use ``n`` intra-op threads (unchanged when None); return the count in force."""
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
    return torch.get_num_threads()


def gpu_utilization(device: torch.device) -> float | None:
    """GPU utilization (percent) where NVML makes it visible; before the sweep it is others' use."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # noqa: BLE001 - pynvml missing or no permission: not visible
        return None


class LoadMonitor:
    """Samples others' load before the sweep and over each round, sets the thread count from the
    cores left free, and keeps the record for ``device.background_load``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpus = affinity()
        self.original_threads = torch.get_num_threads()
        self.record = BackgroundLoad(cpus=len(self.cpus))
        self._start: CpuSample | None = None

    def before(self, seconds: float = 0.5) -> int:
        """Measure while idle, choose the first round's threads; return the count in force."""
        self.record.gpu_utilization_before_pct = gpu_utilization(self.device)
        others = measure(seconds, self.cpus)
        if others is not None:
            self.record.before_cores = round(others, 3)
        return set_threads(free_threads(others, len(self.cpus)))

    def round_start(self) -> None:
        self._start = sample(self.cpus)
        self.record.threads_by_round.append(torch.get_num_threads())

    def round_end(self) -> None:
        """Others' load during the round (this process's own CPU time taken out) sets the next
        round's threads."""
        others = others_cores(self._start, sample(self.cpus))
        if others is None:
            return
        self.record.by_round_cores.append(round(others, 3))
        set_threads(free_threads(others, len(self.cpus)))

    def finish(self) -> None:
        """Judge the load over the capture: ``high`` and ``too_busy``, and a one-line note."""
        rec = self.record
        seen = rec.by_round_cores or ([rec.before_cores] if rec.before_cores is not None else [])
        if not seen:
            return
        mean = sum(seen) / len(seen)
        rec.mean_cores, rec.max_cores = round(mean, 3), round(max(seen), 3)
        cpus = rec.cpus
        rec.high = is_high(mean, cpus)
        rec.too_busy = is_too_busy(mean, cpus)
        threads = sorted(set(rec.threads_by_round)) or [torch.get_num_threads()]
        used = "/".join(str(t) for t in threads)
        load = f"other processes used {mean:.1f} of {cpus} cores on average during the capture (at most {max(seen):.1f} in a round); {used} thread{'s' if used != '1' else ''} used"
        if rec.too_busy:
            rec.note = (
                f"too busy to measure honestly: {load}, so not even one core was free and the timings include "
                "waiting for the CPU; close other programs and capture again"
            )
        elif rec.high:
            rec.note = f"background load: {load}; the intervals are wider for it"

    def restore(self) -> None:
        """Give the process back the thread count it had."""
        set_threads(self.original_threads)
