"""Profiled segments: short torch.profiler sessions, one per round and context, merged into one trace.

The attention share needs profiled steps from several rounds (a load burst during one profiled
pass must not decide it), but one profiler session cannot span rounds that visit other contexts.
So each round records a few decode steps of each context in its own session (the first also
records the prefill), and the sweep merges a context's sessions into its one trace file: the
events of every session in their own time (the profiler's clock is shared by every session of a
process), the process and thread metadata once, and ``ProfilerStep#N`` renumbered so no two
sessions' steps share a name. Each decode step keeps its own annotation
(``tracekit::decode[step=..]``): the segments record different steps of the generation.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule

from tracekit import annotations as ann
from tracekit.capture.backends.base import Backend, Generation, StepCallback
from tracekit.errors import UserError
from tracekit.files import atomic_open


@contextmanager
def kineto_quiet() -> Iterator[None]:
    """Hold back libkineto's ``USDT: ... profiler_start/stop`` lines, written straight to file
    descriptor 2 whenever the profiler starts or stops; anything else it writes is passed on."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = [ln for ln in tmp.read().decode(errors="replace").splitlines(True) if not ln.startswith("USDT:")]
            if rest:
                sys.stderr.write("".join(rest))


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Let Ctrl-C land after the block, not inside it. torch.profiler's start, step and stop are
    Python code driving Kineto's C++ state, and an interrupt raised halfway through one can leave
    that state half-changed: the code that runs next can then crash inside libtorch without a
    word.

    Each press still goes to the handler that was there (the command line counts presses: a
    second one says it is saving, a third quits at once); only the KeyboardInterrupt it raises
    waits, and is raised as the block ends. Outside the main thread, or with no Python handler,
    the block runs as it is."""
    original = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(original):
        yield
        return
    pending: list[KeyboardInterrupt] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        try:
            original(signum, frame)
        except KeyboardInterrupt as exc:
            pending.append(exc)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, original)
    if pending:
        raise pending[0]


@contextmanager
def _transition() -> Iterator[None]:
    """A profiler transition: uninterrupted, and without Kineto's chatter."""
    with interrupts_deferred(), kineto_quiet():
        yield


def record(
    be: Backend,
    run: Callable[[StepCallback], Generation],
    dest: Path,
    *,
    skip: int,
    active: int,
) -> Generation:
    """Run ``run(on_step)`` under torch.profiler and write its Chrome trace (plain JSON) to ``dest``.

    ``run`` calls ``on_step`` at the end of each prefill chunk and decode step (a unit of work);
    the trace records units ``skip .. skip + active - 1``. The profiler warms up on the unit before
    them, or on a token operation of its own when nothing is skipped."""
    activities = [ProfilerActivity.CPU]
    if be.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    written: list[Path] = []

    def on_ready(p: profile) -> None:
        p.export_chrome_trace(str(dest))
        written.append(dest)

    sched = schedule(wait=max(0, skip - 1), warmup=1, active=max(1, active), repeat=1)
    prof = profile(activities=activities, schedule=sched, on_trace_ready=on_ready, record_shapes=False)
    running = ExitStack()
    with _transition():
        running.enter_context(prof)
    try:
        if skip == 0:
            with record_function(ann.WARMUP):
                torch.zeros(1, device=be.device).add_(1)
            with _transition():
                prof.step()

        def step() -> None:
            with _transition():
                prof.step()

        gen = run(step)
    finally:
        with _transition():
            running.close()
    _check_written(written, dest.parent)
    return gen


def _check_written(written: list[Path], where: Path) -> None:
    """Kineto reports nothing when it cannot write (a full disk): the trace must be there and end
    like JSON, or the capture stops with one line saying why."""
    ok = False
    if written:
        try:
            with open(written[-1], "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - 64))
                ok = fh.read().rstrip().endswith((b"}", b"]"))
        except OSError:
            ok = False
    if not ok:
        full = shutil.disk_usage(where).free < (1 << 20)
        why = "no space left on device" if full else "the file is missing or incomplete"
        raise UserError(f"torch.profiler could not write its trace into {where} ({why})")


_STEP = re.compile(r"^ProfilerStep#(\d+)$")


def merge(segments: list[Path], dest: Path) -> None:
    """Write the segments (Chrome JSON files, in time order) as one gzip trace at ``dest``, atomically."""
    if len(segments) == 1:
        with (
            open(segments[0], "rb") as src,
            atomic_open(dest) as fh,
            gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=0) as gz,
        ):
            shutil.copyfileobj(src, gz, 1 << 20)
        return
    doc: dict[str, Any] | None = None
    events: list[Any] = []
    seen_meta: set[str] = set()
    offset = 0
    for path in segments:
        part = json.loads(path.read_text(encoding="utf-8"))
        if doc is None:
            doc = {k: v for k, v in part.items() if k != "traceEvents"}
        top = offset
        for e in part.get("traceEvents", []):
            if not isinstance(e, dict):
                continue
            if e.get("ph") == "M":
                key = json.dumps(e, sort_keys=True)
                if key in seen_meta:
                    continue
                seen_meta.add(key)
            name = e.get("name")
            if isinstance(name, str):
                m = _STEP.match(name)
                if m:
                    n = int(m.group(1)) + offset
                    e["name"] = f"ProfilerStep#{n}"
                    top = max(top, n + 1)
            events.append(e)
        offset = top
    assert doc is not None
    doc["traceEvents"] = events
    with atomic_open(dest) as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(json.dumps(doc).encode("utf-8"))
