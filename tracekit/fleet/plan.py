"""What a run over many traces is told and hands back, wherever it runs: the ``Plan`` (this
process, an embedded cluster or an existing one), the ``Listener`` told how far it is, and the
``Outcome`` a ``Collector`` puts back in input order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tracekit.fleet.task import Failure, TracePartial


class Listener(Protocol):
    """Told how far a run is (a progress bar): traces done, failed among them, running now."""

    def update(self, done: int, failed: int, running: int) -> None: ...


class Silent:
    def update(self, done: int, failed: int, running: int) -> None:
        pass


@dataclass(frozen=True)
class Plan:
    """Where to run: ``scheduler`` (an existing Dask cluster's address), else ``workers`` processes
    of an embedded cluster, each allowed ``memory_limit`` (e.g. ``"4GB"``; default: an equal share
    of this machine's memory); ``workers <= 1`` runs in this process."""

    workers: int
    scheduler: str | None = None
    memory_limit: str | None = None

    @property
    def in_process(self) -> bool:
        return self.scheduler is None and self.workers <= 1


@dataclass
class Outcome:
    partials: list[TracePartial] = field(default_factory=list)  # input order
    failed: list[Failure] = field(default_factory=list)  # input order
    interrupted: bool = False
    cancelled: int = 0  # traces not analyzed because of Ctrl-C


class Collector:
    """Results as they arrive, in any order; ``outcome`` puts them back in input order."""

    def __init__(self, paths: list[str], listener: Listener) -> None:
        self.paths = paths
        self.slots: list[TracePartial | Failure | None] = [None] * len(paths)
        self.listener = listener
        self.done = self.failed = 0

    def add(self, i: int, r: TracePartial | Failure, running: int) -> None:
        self.slots[i] = r
        self.done += 1
        self.failed += isinstance(r, Failure)
        self.listener.update(self.done, self.failed, running)

    def outcome(self, *, interrupted: bool = False) -> Outcome:
        out = Outcome(interrupted=interrupted)
        for r in self.slots:
            if isinstance(r, Failure):
                out.failed.append(r)
            elif r is not None:
                out.partials.append(r)
            else:
                out.cancelled += 1
        return out
