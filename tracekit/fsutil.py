"""The file-system policy, in one place: what tracekit may read, where it may write, and how.

Input: only regular files are read (a FIFO would hang, ``/dev/zero`` never ends), and each
failure to reach one is named (missing, symbolic-link loop, permission).

Output: every write is atomic (a temporary file beside the target, renamed into place; removed on
any failure, Ctrl-C included). A user-named output (``--out``) must pass ``claim_output``: never a
folder, never inside a run folder except the report's own files, and never an existing file that
is not the command's own earlier output unless ``--force``. A device such as ``/dev/null`` is
written as a stream, never replaced.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tracekit.errors import NotARegularFile, UserError


def _mkstemp(prefix: str, suffix: str = "", dir: Path | None = None) -> tuple[int, str]:  # noqa: A002
    import tempfile  # here, not at start-up: it brings random and hashlib along

    return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)


# The run folder's fixed names live here, below ``manifest`` (which imports this module): what a
# command may write inside a run folder is the report's own files, nothing else.
REPORT_STEM = "report"
REPORT_FILES = tuple(f"{REPORT_STEM}.{ext}" for ext in ("md", "html", "json"))
REPORT_PLOTS = f"{REPORT_STEM}-plots"  # where the Markdown report's plots go (``<stem>-plots``)
MAX_NAME_BYTES = 200  # a run name, leaving room for "-9999" within the 255 bytes a file name may have


def os_problem(exc: OSError) -> str:
    """An OSError as a short phrase ('no space left on device')."""
    return (exc.strerror or exc.__class__.__name__).lower()


def _hint(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "; free some space or choose another --out"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "; choose a folder you can write to (--out)"
    return ""


class OutputError(UserError):
    """A write failed (disk full, read-only, permission): one line naming the target."""

    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(f"cannot write {path}: {os_problem(exc)}{_hint(exc)}")


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


def _is_stream(path: Path) -> bool:
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
    if _is_stream(path):  # /dev/null, /dev/stdout, a FIFO: write through, never replace the node
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
            if not _is_stream(target):
                staged.append(_Staged(target, "wb"))
                staged[-1].fh.write(data)
                staged[-1].finish()
        for target, data in files.items():
            if _is_stream(target):
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


# What makes a folder a run: this file, holding a tracekit manifest (``tracekit.manifest`` writes it).
MANIFEST_NAME = "manifest.json"
_MANIFEST_SIGNATURE = b'"tracekit.manifest/'


def is_run_folder(d: Path) -> bool:
    """Whether ``d`` holds a tracekit manifest (what makes a folder a run)."""
    f = Path(d) / MANIFEST_NAME
    try:
        if not stat.S_ISREG(os.stat(f).st_mode):
            return False  # a FIFO would block the read
        with open(f, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return _MANIFEST_SIGNATURE in head


def run_folder_of(path: Path) -> Path | None:
    """The run folder (a folder holding a tracekit manifest) that ``path`` lies in, if any."""
    for d in Path(os.path.abspath(path)).resolve().parents:
        if is_run_folder(d):
            return d
    return None


def _starts_with(path: Path, signature: re.Pattern[bytes]) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return signature.match(head) is not None


def claim_output(path: Path, *, force: bool, signature: re.Pattern[bytes] | None = None, flag: str = "--out") -> Path:
    """Check a user-named output file against the output policy; return it.

    Refused: a folder; a file inside a run folder other than the report's own (even with
    ``force``: a run is the user's measurement); an existing regular file whose first bytes do not
    match ``signature`` (the command's own earlier output), unless ``force``.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is not a folder")
    run = run_folder_of(path)
    if run is not None:
        rel = Path(os.path.abspath(path)).resolve().relative_to(run)
        if not (str(rel) in REPORT_FILES or rel.parts[0] == REPORT_PLOTS):
            raise UserError(
                f"{flag} {path} is inside the run folder {run}; tracekit writes only its report there "
                f"({', '.join(REPORT_FILES)}, {REPORT_PLOTS}/): choose a path outside the run"
            )
    if _is_stream(path) or not path.exists():
        return path
    if force or (signature is not None and _starts_with(path, signature)):
        return path
    what = "is not tracekit's own output" if signature is not None else "exists"
    raise UserError(f"{flag} {path} {what}; tracekit never overwrites a file: use --force or another {flag}")


def check_run_name(name: str) -> str:
    """A run folder name: one plain path component, printable, short enough for any file system."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise UserError(f"--name {name!r}: give a plain folder name (no '/', not '.' or '..')")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UserError(f"--name {name!r}: control characters are not allowed in a run name")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UserError(f"--name is {len(name.encode('utf-8'))} bytes long; a run name has at most {MAX_NAME_BYTES}")
    return name


def check_out_folder(out: Path) -> None:
    """Make sure ``out`` is (or can become) a folder tracekit can create runs in, before any work."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder (each run gets a new folder inside)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = _mkstemp(prefix=".tracekit-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create a run there ({os_problem(exc)}){_hint(exc)}") from None


def new_run_dir(out: Path, stem: str) -> Path:
    """Create a fresh directory ``out/stem`` (``stem-2``, ``stem-3``... if taken); never reuse one."""
    check_run_name(stem)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out, exc) from None
    for i in range(1, 10_000):
        candidate = out / (stem if i == 1 else f"{stem}-{i}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(candidate, exc) from None
        return candidate
    raise UserError(f"{out}: too many runs named {stem}; choose another --out")
