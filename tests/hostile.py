"""Hostile inputs and the harness the hostile tests share: trace documents, gzip bombs, the
command line run in-process, and the file-system faults this machine can make for real."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracekit.cli import main

BASE_US = 5.1e12  # Kineto-like timestamps: a missing ts read as 0 would lie 59 days away


def events(n: int = 60) -> list[dict[str, Any]]:
    """A small GPU trace: per step, an annotation, an op, its launch and the kernel it launched."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        t = BASE_US + 100.0 * i
        out += [
            {"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{i}", "pid": 1, "tid": 1, "ts": t, "dur": 90},
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": t + 1, "dur": 20},
            {
                "ph": "X",
                "cat": "cuda_runtime",
                "name": "cudaLaunchKernel",
                "pid": 1,
                "tid": 1,
                "ts": t + 2,
                "dur": 5,
                "args": {"correlation": i},
            },
            {
                "ph": "X",
                "cat": "kernel",
                "name": "ampere_sgemm_128x64_nn",
                "pid": 0,
                "tid": 7,
                "ts": t + 10,
                "dur": 30,
                "args": {"correlation": i},
            },
        ]
    return out


def doc(evs: list[Any], *, raw: list[bytes] | None = None, at: int = 0, tail: bytes = b"") -> bytes:
    """A Chrome trace document; ``raw`` JSON pieces are inserted before event ``at``."""
    parts = [json.dumps(e).encode() for e in evs]
    parts[at:at] = raw or []
    return b'{"traceEvents": [\n' + b",\n".join(parts) + b'\n], "deviceProperties": [{"name": "GPU"}]}' + tail


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data, 1) if path.name.endswith(".gz") else data)
    return path


def bomb(path: Path, prefix: bytes, filler: bytes, members: int, member_mb: int = 64) -> Path:
    """A gzip of several members: ``prefix``, then ``members`` x ``member_mb`` MiB of ``filler``;
    a few hundred kilobytes that inflate to gigabytes."""
    one = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = one.compress(filler * ((member_mb << 20) // len(filler))) + one.flush()
    path.write_bytes(gzip.compress(prefix) + block * members)
    return path


def tk(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """The real command line, in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(result: tuple[int, str, str], *needles: str) -> str:
    """The error policy: exit 2, exactly one line on stderr, no traceback; return that line."""
    code, _, err = result
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tracekit: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files a failed write could leave behind."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]


@contextlib.contextmanager
def small_disk(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where`` (root only; the test skips otherwise)."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs (a real full or read-only disk) needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def as_nobody() -> list[str]:
    """A command prefix that drops root (so permissions apply), or [] when not root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to run a command without root")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


# Trace files that must be refused, each with the words every loader path uses.
BAD = {
    "truncated": (doc(events())[:-700], "invalid or truncated JSON (Input data was truncated)"),
    "NaN literal": (doc(events(), raw=[b'{"ph":"X","ts":NaN}'], at=120), "invalid character (byte 1"),
    "trailing garbage": (doc(events(), tail=b" }garbage"), "trailing characters (byte"),
    "invalid UTF-8": (doc(events(), raw=[b'{"ph":"X","name":"\xff\xfe"}'], at=200), "Invalid UTF-8"),
    "42": (b"42", "a single value, not a Chrome trace"),
    "null": (b"null\n", "a single value, not a Chrome trace"),
    "string": (b'"traceEvents"', "a single value, not a Chrome trace"),
    "UTF-16": ('{"traceEvents": []}'.encode("utf-16"), "is UTF-16 text"),
    "binary": (bytes(range(256)) * 8, "is not JSON"),
    "no traceEvents": (b'{"traceEvent": []}', "no traceEvents array"),
    "traceEvents an object": (b'{"traceEvents": {"ph": "X"}}', "traceEvents is not a list of events"),
    "no ph anywhere": (doc([{k: v for k, v in e.items() if k != "ph"} for e in events()]), "240 malformed events"),
    "empty": (b"", "is empty"),
    "whitespace": (b" \n\t" * 5000, "is empty"),
    "args nested 5000 deep": (doc(events(), raw=[b'{"ph":"X","args":' + b"[" * 5000 + b"]" * 5000 + b"}"]), "nested"),
    "objects nested 5000 deep": (
        doc(events(), raw=[b'{"ph":"X","a":' + b'{"a":' * 5000 + b"1" + b"}" * 5001]),
        "nested",
    ),
    "array nested 5000 deep": (b"[" * 5000 + b"]" * 5000, "nested more than about 1000 levels"),
}

# Events that must be dropped and counted, not trusted: (raw events, expected counts).
ODD = {
    # (events inserted among 240 good ones, expected outcome)
    "missing ph": ([b'{"cat":"cpu_op","name":"x","ts":5.1e12,"dur":1}'], "skipped=1 out_of_range=0"),
    "missing ts": ([b'{"ph":"X","cat":"cpu_op","name":"x","pid":1,"tid":1,"dur":1}'], "skipped=0 out_of_range=1"),
    "ts 1e30": ([b'{"ph":"X","cat":"cpu_op","name":"x","pid":1,"tid":1,"ts":1e30,"dur":1}'], "out_of_range=1"),
    "negative dur": ([b'{"ph":"X","cat":"kernel","name":"k","pid":0,"tid":7,"ts":5.1e12,"dur":-5}'], "out_of_range=1"),
    "dur 1e400": ([b'{"ph":"X","cat":"cpu_op","name":"x","pid":1,"tid":1,"ts":5.1e12,"dur":1e400}'], "out_of_range=1"),
    "dur 1 and 400 zeros": (
        [b'{"ph":"X","cat":"cpu_op","name":"x","ts":5.1e12,"dur":1' + b"0" * 400 + b"}"],
        "skipped=1",
    ),
    "ts -inf string": (
        [b'{"ph":"X","cat":"cpu_op","name":"x","pid":1,"tid":1,"ts":"-1e999","dur":1}'],
        "out_of_range=1",
    ),
    "UTF-8 byte-order mark": ([], "skipped=0 out_of_range=0"),
    "invalid UTF-8 in a field tracekit skips": ([b'{"ph":"X","cat":"other","ts":5.1e12,"zz":"\xff"}'], "skipped=0"),
}

# A kernel name that would retitle and clear a terminal, reorder text, run script and fetch an image.
HOSTILE_NAME = "\x1b]0;owned\x07\x1b[2Jflash_attn_\u202ekernel<script>alert(1)</script>![x](http://evil.example/p.png)"
