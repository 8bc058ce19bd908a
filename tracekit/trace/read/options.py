"""How traces are read: one frozen ``ReadOptions``, built once by the command line
(``ReadOptions.from_env``) and handed to every load; library callers get the defaults.

Nothing in the loader reads the environment or a module-level setting: a test or a caller that
wants another threshold builds options with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tracekit.errors import SettingError
from tracekit.units import format_size, parse_size

Loader = Literal["auto", "whole", "chunked"]
LOADERS: tuple[Loader, ...] = ("auto", "whole", "chunked")

# field -> (environment variable, least, most); sizes in bytes, workers a count.
_SIZES = {
    "chunked_from": ("TRACEKIT_CHUNKED_BYTES", 0, 10**14),
    "parallel_from": ("TRACEKIT_PARALLEL_BYTES", 0, 10**14),
    "chunk_bytes": ("", 4096, 1 << 30),
    "piece_bytes": ("", 4096, 1 << 30),
    "inflate_budget": ("TRACEKIT_MAX_INFLATE", 10**6, 10**14),
}
_WORKERS = ("TRACEKIT_LOAD_WORKERS", 1, 4096)
# A trace's distinct event names: each costs about 0.9 kB to read and analyze (docs/performance.md),
# so their number is bounded, not only the text.
_NAMES = ("TRACEKIT_MAX_NAMES", 1000, 10**8)
BUDGET_ENV = _SIZES["inflate_budget"][0]
_LOADER_ENV = "TRACEKIT_LOADER"


@dataclass(frozen=True)
class ReadOptions:
    """Settings of one load.

    * ``loader``: ``auto`` reads a file whole up to ``chunked_from`` bytes of JSON and in chunks
      past it; ``whole`` and ``chunked`` force one reader (to compare them, or to debug).
    * ``chunk_bytes``: the chunked reader's pieces are about twice this (~2 MB stay in the CPU
      cache); ``piece_bytes`` the same for the pieces handed to worker processes.
    * ``parallel_from``: past this many bytes of JSON the chunked reader decodes on several cores;
      ``workers`` processes (None: one per usable core where forking is safe; a number is taken
      as given wherever this process may fork).
    * ``inflate_budget``: the most text one file may inflate to (None: a quarter of the memory
      this process may still use, measured at each load).
    * ``isal``: inflate with ISA-L where it is installed (else the standard library's zlib).
    * ``max_names``: the most distinct event names one trace may hold (``TRACEKIT_MAX_NAMES``).
    """

    loader: Loader = "auto"
    chunked_from: int = 32 << 20
    parallel_from: int = 128 << 20
    chunk_bytes: int = 1 << 20
    piece_bytes: int = 2 << 20
    workers: int | None = None
    inflate_budget: int | None = None
    isal: bool = True
    max_names: int = 250_000

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            raise SettingError("loader", self.loader, f"give one of {', '.join(LOADERS)}")
        for name, (env, lo, hi) in _SIZES.items():
            value = getattr(self, name)
            if value is not None and not lo <= value <= hi:
                raise SettingError(env or name, value, _size_range(lo, hi))
        if self.workers is not None and not _WORKERS[1] <= self.workers <= _WORKERS[2]:
            raise SettingError("workers", self.workers, _count_range())
        if not _NAMES[1] <= self.max_names <= _NAMES[2]:
            raise SettingError(_NAMES[0], self.max_names, f"give a whole number from {_NAMES[1]:,} to {_NAMES[2]:,}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReadOptions:
        """The defaults, with what the ``TRACEKIT_*`` variables set; a bad value is a
        ``SettingError`` naming the variable and what it accepts."""
        env = os.environ if environ is None else environ
        given: dict[str, object] = {}
        loader = env.get(_LOADER_ENV)
        if loader:
            if loader not in LOADERS:
                raise SettingError(_LOADER_ENV, loader, f"give one of {', '.join(LOADERS)}")
            given["loader"] = loader
        for name, (var, lo, hi) in _SIZES.items():
            text = env.get(var) if var else None
            if text:
                given[name] = _size(var, text, lo, hi)
        text = env.get(_WORKERS[0])
        if text:
            if not (len(text) <= 6 and text.isdigit() and _WORKERS[1] <= int(text) <= _WORKERS[2]):
                raise SettingError(_WORKERS[0], text, _count_range())
            given["workers"] = int(text)
        text = env.get(_NAMES[0])
        if text:
            if not (len(text) <= 10 and text.isdigit() and _NAMES[1] <= int(text) <= _NAMES[2]):
                raise SettingError(_NAMES[0], text, f"give a whole number from {_NAMES[1]:,} to {_NAMES[2]:,}")
            given["max_names"] = int(text)
        return cls(**given)  # type: ignore[arg-type]

    def budget_source(self) -> str:
        """Where the inflate budget comes from, for messages."""
        return "a quarter of the available memory" if self.inflate_budget is None else BUDGET_ENV


def _size(var: str, text: str, lo: int, hi: int) -> int:
    try:
        value = parse_size(text)
    except ValueError:
        value = -1
    if not lo <= value <= hi:
        raise SettingError(var, text, f"{_size_range(lo, hi)} (examples: {var}=8G, {var}=512M)")
    return value


def _size_range(lo: int, hi: int) -> str:
    return f"give a size from {format_size(lo)} to {format_size(hi)}"


def _count_range() -> str:
    return f"give a whole number from {_WORKERS[1]} to {_WORKERS[2]}"


_MIN_BUDGET = 64 << 20


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
        return int(text)
    except (OSError, ValueError):
        return None


def available_memory() -> int:
    """Bytes this process can still allocate: the least of the system's available memory, the
    cgroup's remaining allowance and the address-space limit."""
    avail: int | None = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 4 << 30
    limit, usage = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and usage is not None:
        avail = min(avail, max(0, limit - usage))

    import resource  # here: one import less in every command's start-up

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        avail = min(avail, max(0, soft - _vm_size()))
    return avail


def _vm_size() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def inflate_budget(options: ReadOptions) -> int:
    """The most text one file may inflate to, in bytes."""
    if options.inflate_budget is not None:
        return options.inflate_budget
    return max(_MIN_BUDGET, available_memory() // 4)
