"""File primitives: what tracekit may read, and how it writes a file whole.

Input: only regular files are read (a FIFO would hang, ``/dev/zero`` never ends), and each
failure to reach one is named (missing, symbolic-link loop, permission).

Output: every write is atomic (a temporary file beside the target, renamed into place; removed on
any failure, Ctrl-C included). A device such as ``/dev/null`` is written as a stream, never
replaced. Which paths a command may write at all is the output policy (``tracekit.outputs``),
which builds on this module and on the run folder's names (``tracekit.manifest``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tracekit.errors import NotARegularFile, UserError


def os_problem(exc: OSError) -> str:
    """An OSError as a short phrase ('no space left on device')."""
    return (exc.strerror or exc.__class__.__name__).lower()


def hint(exc: OSError) -> str:
    """What to do about a failed write, as a clause to append (or nothing)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "; free some space or choose another --out"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "; choose a folder you can write to (--out)"
    return ""


class OutputError(UserError):
    """A write failed (disk full, read-only, permission): one line naming the target."""

    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(f"cannot write {path}: {os_problem(exc)}{hint(exc)}")


# -- input ------------------------------------------------------------------------------------


def regular_file(path: Path, what: str = "file") -> os.stat_result:
    """Stat ``path`` and refuse anything but a readable regular file, with the reason
    (``NotARegularFile``, whose ``kind`` says which)."""
    name = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFile(name, f"is a symbolic link loop, not a {what}", kind="link-loop") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NotARegularFile(name, "no such file", kind="missing") from None
        raise NotARegularFile(name, f"cannot read it ({os_problem(exc)})", kind="unreadable") from None
    if stat.S_ISDIR(st.st_mode):
        raise NotARegularFile(name, f"is a directory, not a {what}", kind="directory")
    if not stat.S_ISREG(st.st_mode):
        fifo = stat.S_ISFIFO(st.st_mode)
        raise NotARegularFile(
            name,
            f"is {'a FIFO' if fifo else 'a device or socket'}, not a regular {what}",
            kind="fifo" if fifo else "device",
            advice="tracekit reads files only",
        )
    if not os.access(path, os.R_OK):
        raise NotARegularFile(name, "cannot read it (permission denied)", kind="unreadable")
    return st


# -- output -----------------------------------------------------------------------------------


def is_stream(path: Path) -> bool:
    """Whether ``path`` is a character device or a FIFO (written through, never replaced)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


class _Staged:
    """A temporary file beside ``target`` that becomes ``target`` on ``commit``: created with the
    permissions ``open`` would give ``target`` (0666 less the umask), written, flushed to disk."""

    def __init__(self, target: Path, mode: str) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        while True:
            self.tmp: str | None = str(target.parent / f".{target.name[:100]}.{os.urandom(6).hex()}.tmp")
            try:
                fd = os.open(self.tmp, flags, 0o666)
                break
            except FileExistsError:
                continue
        self.fh: IO[bytes] = os.fdopen(fd, mode)

    def finish(self) -> None:
        """Everything written is on disk: what ``commit`` renames is whole."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()

    def commit(self) -> None:
        assert self.tmp is not None
        os.replace(self.tmp, self.target)
        self.tmp = None

    def discard(self) -> None:
        """Remove the temporary file unless it was committed (any failure, Ctrl-C included)."""
        try:
            self.fh.close()
        except OSError:
            pass
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass


@contextmanager
def atomic_open(path: Path, mode: str = "wb", *, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """Write to a temporary file beside ``path`` and rename it into place only on success.

    A crash, a full disk or Ctrl-C leaves either the old file or no file, never a torn one, and
    no temporary file. An OS failure becomes an ``OutputError`` naming ``path``.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise UserError(f"{path} exists; tracekit never overwrites a file (choose another --out)")
    if is_stream(path):  # /dev/null, /dev/stdout, a FIFO: write through, never replace the node
        try:
            with open(path, mode) as fh:
                yield fh
        except OSError as exc:
            raise OutputError(path, exc) from None
        return
    staged: _Staged | None = None
    try:
        staged = _Staged(path, mode)
        yield staged.fh
        staged.finish()
        staged.commit()
    except OSError as exc:
        raise OutputError(path, exc) from None
    finally:
        if staged is not None:
            staged.discard()


def write_bytes_atomic(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    with atomic_open(path, "wb", overwrite=overwrite) as fh:
        fh.write(data)


def write_text_atomic(path: Path, text: str, *, overwrite: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def write_files_atomic(files: dict[Path, bytes]) -> None:
    """Write several files as one: each goes to a temporary file first, and only when all are
    written are they renamed into place (a failure leaves the old files and no temporary ones)."""
    staged: list[_Staged] = []
    target = Path()
    try:
        for target, data in files.items():
            if not is_stream(target):
                staged.append(_Staged(target, "wb"))
                staged[-1].fh.write(data)
                staged[-1].finish()
        for target, data in files.items():
            if is_stream(target):
                with open(target, "wb") as fh:
                    fh.write(data)
        for st in staged:
            target = st.target
            st.commit()
    except OSError as exc:
        raise OutputError(target, exc) from None
    finally:
        for st in staged:
            st.discard()
