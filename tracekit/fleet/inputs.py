"""Which files a ``tracekit analyze PATH...`` names.

A path is a trace file, a directory (searched recursively for ``*.json`` and ``*.json.gz``), or a
glob. Directories skip tracekit's own non-trace files (``manifest.json``, the report) and the
Perfetto-enriched twin of each raw trace, so a run folder counts every context once. A file named
outright is always taken, even when it is not a trace: analyzing it then lists it as failed.

Walks (a directory, a glob) are iterative (a folder 1,100 levels deep is walked like any other),
follow a linked folder only when it leads somewhere the walk has not been (a link back into the
tree, ``a -> .``, would otherwise multiply paths without end), stop at ``MAX_WALK_ENTRIES``
entries, and name a folder they cannot read instead of skipping it.
"""

from __future__ import annotations

import fnmatch
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from tracekit.errors import UserError
from tracekit.manifest import ENRICHED_SUFFIX, MANIFEST, REPORT_STEM, TRACES_REPORT_STEM

SUFFIXES = (".json", ".json.gz")
_GLOB_CHARS = frozenset("*?[")


def _is_trace_name(p: Path) -> bool:
    name = p.name
    if not name.endswith(SUFFIXES) or name.startswith("."):
        return False
    if name == MANIFEST or name.endswith(ENRICHED_SUFFIX):
        return False
    return not name.startswith((f"{REPORT_STEM}.", f"{TRACES_REPORT_STEM}."))  # tracekit's own reports


MAX_WALK_ENTRIES = 1_000_000  # a walk visits at most this many names (TRACEKIT_MAX_WALK raises it)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _walk(root: Path, depth: int | None = None) -> Iterator[tuple[Path, bool]]:
    """Every (path, is_folder) below ``root`` (not ``root`` itself), breadth first, at most ``depth``
    levels down; each real folder once, so links back into the tree end the walk instead of
    looping. An unreadable folder is a ``UserError`` naming it."""
    most = int(os.environ.get("TRACEKIT_MAX_WALK", "") or MAX_WALK_ENTRIES)
    # A folder is known by its (device, inode): resolving each folder's real path would read every
    # level above it again, quadratic in the depth.
    seen = {_identity(os.stat(root))}
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    count = 0
    while queue:
        folder, level = queue.popleft()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            why = (exc.strerror or type(exc).__name__).lower()
            name = str(folder) if len(str(folder)) <= 200 else f"{str(folder)[:80]}...{str(folder)[-80:]}"
            raise UserError(f"{name}: cannot read this folder ({why}); fix it or name the traces outright") from None
        for e in entries:
            count += 1
            if count > most:
                raise UserError(
                    f"{root}: more than {most:,} files and folders below it, the walk's limit "
                    f"(raise it with TRACEKIT_MAX_WALK={2 * most})"
                )
            p = Path(folder) / e.name
            try:
                is_dir = e.is_dir()
                ident = _identity(e.stat()) if is_dir else None
            except OSError:
                is_dir, ident = False, None
            if ident is not None:
                if ident in seen:
                    continue  # a link back into the tree, or to a folder already walked
                seen.add(ident)
                if depth is None or level + 1 < depth:
                    queue.append((p, level + 1))
            yield p, is_dir


def _in_directory(d: Path) -> list[Path]:
    found = sorted(p for p, is_dir in _walk(d) if not is_dir and _is_trace_name(p) and p.is_file())
    if not found:
        raise UserError(f"{d}: no *.json or *.json.gz trace in this directory or below it")
    return found


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether path components match glob components (``**``: any number of folders)."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    if not parts or (parts[0].startswith(".") and not pattern[0].startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], pattern[0]) and _matches(parts[1:], pattern[1:])


def _glob(arg: str) -> list[Path]:
    """What a glob matches, sorted: ``glob.glob`` without its endless walks through linked loops."""
    parts = Path(arg).parts
    fixed = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    pattern = parts[fixed:]
    if not root.is_dir():
        return []
    depth = None if "**" in pattern else len(pattern)
    hits = [p for p, _ in _walk(root, depth) if _matches(p.relative_to(root).parts, pattern)]
    return sorted(hits)


def expand(args: list[str]) -> list[str]:
    """The trace files ``args`` name, in the order given (each directory's and glob's sorted), once each."""
    out: list[str] = []
    seen: set[str] = set()

    def take(p: Path) -> None:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            out.append(str(p))

    for arg in args:
        p = Path(arg)
        if p.is_dir():
            for f in _in_directory(p):
                take(f)
        elif p.exists() or not (_GLOB_CHARS & set(arg)):
            take(p)  # a missing file is listed as failed, like any other bad trace
        else:
            hits = _glob(arg)
            files = [f for h in hits for f in (_in_directory(h) if h.is_dir() else [h] if _is_trace_name(h) else [])]
            if not files:
                raise UserError(f"{arg}: no *.json or *.json.gz trace matches this pattern")
            for f in files:
                take(f)
    return out
