"""The output policy: where a command may write, and never over what.

A user-named output (``--out``) and each file written beside it (the report's plots) must pass
``claim_output``: never a folder; never a symbolic link (neither written through nor replaced);
never inside a run folder except the report's own files (a run is recognized by what its manifest
says, not by how it is formatted), whatever ``--force`` says; never through a link that leaves the
folder it names; and never an existing file that tracekit did not write there unless ``--force``.
What tracekit wrote is recorded by ``record_outputs`` in a ledger beside the files
(``.tracekit-outputs.json``: each name with the SHA-256 of what was written), so a file is
recognized by that marker, not by its first bytes: a user's notes that happen to begin like a
report, or a report the user edited since, are not replaced. A capture never reuses a run folder (``new_run_dir``). The
writes themselves are ``tracekit.files``'s atomic ones.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from tracekit.errors import UserError
from tracekit.files import OutputError, hint, is_stream, os_problem, write_text_atomic
from tracekit.manifest import MANIFEST, MAX_MANIFEST_BYTES, REPORT_FILES, REPORT_PLOTS

MAX_NAME_BYTES = 200  # a run name, leaving room for "-9999" within the 255 bytes a file name may have


def _mkstemp(prefix: str, suffix: str = "", dir: Path | None = None) -> tuple[int, str]:  # noqa: A002
    import tempfile  # here, not at start-up: it brings random and hashlib along

    return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)


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
    schema = _json_schema(Path(d) / MANIFEST, MAX_MANIFEST_BYTES)
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
        if not is_stream(p):
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
    output's folder; a symbolic link (other than to a device such as ``/dev/stdout``). Refused
    unless ``force``: an existing regular file tracekit did not write there (``owned``)."""
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
        if os.path.islink(p) and not is_stream(p):
            # Writing through a link writes where the user did not name, and replacing it drops the
            # user's link: neither is a fresh name, so even --force does not apply.
            dangling = "" if os.path.exists(p) else " that leads nowhere"
            raise UserError(
                f"{p} is a symbolic link{dangling}; tracekit never writes through or replaces a link: "
                f"give {flag} a fresh file name"
            )
        if is_stream(p) or not os.path.lexists(p) or force or owned(p):
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
        raise UserError(f"--out {out}: cannot create a run there ({os_problem(exc)}){hint(exc)}") from None


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
