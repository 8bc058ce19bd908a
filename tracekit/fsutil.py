"""The file-system policy, in one place: what tracekit may read, where it may write, and how.

Input: only regular files are read (a FIFO would hang, ``/dev/zero`` never ends), and each
failure to reach one is named (missing, symbolic-link loop, permission).

Output: every write is atomic (a temporary file beside the target, renamed into place; removed on
any failure, Ctrl-C included). A user-named output (``--out``) and each file written beside it
(the report's plots) must pass ``claim_output``: never a folder; never inside a run folder except
the report's own files (a run is recognized by what its manifest says, not by how it is
formatted), whatever ``--force`` says; never through a link that leaves the folder it names; and
never an existing file that tracekit did not write there unless ``--force``. What tracekit wrote is
recorded by ``record_outputs`` in a ledger beside the files (``.tracekit-outputs.json``: each
name with the SHA-256 of what was written), so a file is recognized by that marker, not by its
first bytes: a user's notes that happen to begin like a report, or a report the user edited
since, are not replaced. A device such as ``/dev/null`` is written as a stream, never replaced.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
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
TRACES_REPORT_STEM = "steps-report"  # the report ``tracekit report`` writes beside foreign traces
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
MAX_MANIFEST_BYTES = 64 << 20  # a manifest is a few kilobytes; anything this large is not one
OUTPUTS_LEDGER = ".tracekit-outputs.json"
_LEDGER_SCHEMA = "tracekit.outputs/1"
_MAX_LEDGER_BYTES = 4 << 20


def _json_schema(f: Path, limit: int) -> str | None:
    """The ``schema`` field of a JSON object in the regular file ``f``, or None: the file is read
    as JSON (any key order, any formatting), never matched by its bytes."""
    import msgspec

    class _Schema(msgspec.Struct):
        schema: str = ""

    try:
        st = os.stat(f)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None  # a FIFO would block the read
        with open(f, "rb") as fh:
            data = fh.read(limit + 1)
        return msgspec.json.decode(data, type=_Schema).schema
    except (OSError, msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def is_run_folder(d: Path) -> bool:
    """Whether ``d`` holds a tracekit manifest (what makes a folder a run)."""
    schema = _json_schema(Path(d) / MANIFEST_NAME, MAX_MANIFEST_BYTES)
    return schema is not None and schema.startswith("tracekit.manifest/")


def run_folder_of(path: Path) -> Path | None:
    """The run folder (a folder holding a tracekit manifest) that ``path`` lies in, if any."""
    for d in Path(os.path.abspath(path)).resolve().parents:
        if is_run_folder(d):
            return d
    return None


def _digest(path: Path) -> str | None:
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def _ledger(folder: Path) -> dict[str, str] | None:
    """The names and digests tracekit recorded in ``folder``; {} when there is no ledger, None when
    a file of that name is not one (it is then left alone)."""
    import msgspec

    f = folder / OUTPUTS_LEDGER
    if not os.path.lexists(f):
        return {}
    if _json_schema(f, _MAX_LEDGER_BYTES) != _LEDGER_SCHEMA:
        return None
    try:
        files = msgspec.json.decode(f.read_bytes(), type=dict[str, object]).get("files")
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not isinstance(files, dict):
        return None
    return {str(k): str(v) for k, v in files.items()}


def owned(path: Path) -> bool:
    """Whether ``path`` is a file tracekit wrote there and nobody changed since (the ledger's marker)."""
    path = Path(path)
    recorded = (_ledger(path.parent) or {}).get(path.name)
    return recorded is not None and recorded == _digest(path)


def record_outputs(paths: Iterable[Path]) -> None:
    """Mark ``paths`` (just written) as tracekit's own in their folders' ledgers. A ledger that
    cannot be written costs only the mark: the next write there then asks for ``--force``."""
    by_folder: dict[Path, list[Path]] = {}
    for p in paths:
        p = Path(p)
        if not _is_stream(p):
            by_folder.setdefault(p.parent, []).append(p)
    for folder, written in by_folder.items():
        ledger = _ledger(folder)
        if ledger is None:
            continue  # someone else's file by that name: never replaced
        ledger = {name: d for name, d in ledger.items() if (folder / name).is_file()}
        for p in written:
            digest = _digest(p)
            if digest is not None:
                ledger[p.name] = digest
        import json

        text = json.dumps({"schema": _LEDGER_SCHEMA, "files": dict(sorted(ledger.items()))}, indent=1) + "\n"
        try:
            write_text_atomic(folder / OUTPUTS_LEDGER, text)
        except OutputError:
            pass


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(folder)))


def claim_output(path: Path, *, force: bool, flag: str = "--out", attachments: Iterable[str] = ()) -> Path:
    """Check a user-named output file, and the files written beside it (``attachments``, relative
    to its folder), against the output policy; return it.

    Refused, even with ``force``: a folder; a file inside a run folder other than the report's own
    (a run is the user's measurement); an attachment whose folder is a link leading out of the
    output's folder. Refused unless ``force``: an existing regular file tracekit did not write
    there (``owned``)."""
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
    targets = [path]
    for name in attachments:
        p = parent / name
        if not _inside(p.parent, parent):
            raise UserError(
                f"{p.parent} leads out of {parent} (a link); tracekit never writes through it: "
                "remove the link or choose another --out"
            )
        targets.append(p)
    for p in targets:
        if _is_stream(p) or not os.path.lexists(p) or force or owned(p):
            continue
        what = "exists and is not tracekit's own output" if p == path else "exists and tracekit did not write it"
        raise UserError(f"{p} {what}; tracekit never overwrites a file: use --force or another {flag}")
    return path


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
