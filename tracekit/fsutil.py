"""Atomic file writes and never-overwriting run directories."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tracekit.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: Path, mode: str = "wb", *, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """Write to a temporary file beside ``path`` and rename it into place only on success.

    A crash or Ctrl-C leaves either the old file or no file, never a torn one.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise UserError(f"{path} exists; tracekit never overwrites a file (choose another --out)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    with atomic_open(path, "wb", overwrite=overwrite) as fh:
        fh.write(data)


def write_text_atomic(path: Path, text: str, *, overwrite: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def new_run_dir(out: Path, stem: str) -> Path:
    """Create a fresh directory ``out/stem`` (``stem-2``, ``stem-3``... if taken); never reuse one."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        candidate = out / (stem if i == 1 else f"{stem}-{i}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise UserError(f"{out}: too many runs named {stem}; choose another --out")
