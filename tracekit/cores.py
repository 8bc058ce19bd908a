"""The CPUs this process may run on: its affinity mask (which ``taskset``, containers and cgroup
cpusets set), not the machine's count. One definition for everything that sizes work to the
cores: capture's thread count, the parallel trace reader, the embedded Dask cluster."""

from __future__ import annotations

import os


def affinity() -> list[int]:
    """The CPUs this process may run on (every CPU where the system has no affinity call)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return list(range(os.cpu_count() or 1))


def usable_cores() -> int:
    return max(1, len(affinity()))
