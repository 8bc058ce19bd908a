"""Write a large trace of many tiny events (the worst case for bytes per span): Kineto-shaped
operators, launches and kernels with correlation ids, ~80 bytes of JSON per event.

    python bench/make_tiny_events.py OUT.json EVENTS
"""

from __future__ import annotations

import sys
from pathlib import Path

NAMES = ("aten::add", "aten::mul", "aten::mm", "aten::copy_")
KERNELS = ("k_add", "k_mul", "gemm_k", "copy_k")


def write(out: Path, events: int) -> int:
    """Write about ``events`` events (a multiple of 3) to ``out``; return how many were written."""
    n = 0
    with open(out, "w", buffering=1 << 22) as fh:
        fh.write('{"schemaVersion":1,"traceEvents":[\n')
        ts = 1_000_000.0
        step = 0
        parts: list[str] = []
        while n < events:
            i = step % 4
            c = step + 1
            parts.append(
                f'{{"ph":"X","cat":"cpu_op","name":"{NAMES[i]}","pid":1,"tid":7,"ts":{ts:.3f},"dur":4.0}},\n'
                f'{{"ph":"X","cat":"cuda_runtime","name":"cudaLaunchKernel","pid":1,"tid":7,"ts":{ts + 1:.3f},'
                f'"dur":2.0,"args":{{"correlation":{c}}}}},\n'
                f'{{"ph":"X","cat":"kernel","name":"{KERNELS[i]}","pid":0,"tid":9,"ts":{ts + 3:.3f},"dur":1.5,'
                f'"args":{{"correlation":{c}}}}}'
            )
            n += 3
            step += 1
            ts += 5.0
            if len(parts) == 4096 or n >= events:
                fh.write(",\n".join(parts))
                parts = []
                if n < events:
                    fh.write(",\n")
        fh.write('\n],"deviceProperties":[{"name":"synthetic"}]}\n')
    return n


if __name__ == "__main__":
    print(write(Path(sys.argv[1]), int(sys.argv[2])))
