"""Run by each worker of the embedded cluster as it starts (a Dask preload).

Ctrl-C reaches every process of the terminal's group; the driver handles it (cancels, closes the
cluster, prints what finished), so its workers ignore it instead of dying with a traceback each.
The analysis modules are imported here, while the cluster starts, rather than by the first task.
"""

from __future__ import annotations

import signal
import threading


def dask_setup(worker: object) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import tracekit.fleet.task  # noqa: F401
