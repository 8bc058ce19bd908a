"""Correlation ids, and the links they make from each device event to the runtime call that
launched it.

Ids are read into one int64 column per stretch of spans (``CorrelationIds.column``): integers from
-1 up stay as they are (-1: none), and every other id (a string that spells no integer, an integer
below -1 or past 64 bits) gets a code below -1, the same for the same id across the whole trace; a
piece built in another process brings its own codes, mapped onto the trace's with ``translation``
and ``recode``. At the end ``link_by_id`` matches launches and device events on those columns, and
``link_flows`` links what is left through ``ac2g`` flow events, which a loader reads only when
``needs_flows`` says some id was missing.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracekit.trace.model import RUNTIME_CATS, Event, FlowEnd, FlowStart, Trace

_NONE_IS_MINUS_ONE: dict[Any, Any] = {None: -1}
_CORR = attrgetter("args.correlation")


def _corr_of(e: Event) -> int | str | None:
    a = e.args
    return None if a is None else a.correlation


def _correlations(events: list[Event]) -> list[int | str | None]:
    try:
        return list(map(_CORR, events))  # fast path: every event has args
    except AttributeError:
        return list(map(_corr_of, events))


class CorrelationIds:
    """The codes of one trace's ids that are not integers from -1 up (``codes``: id -> code)."""

    def __init__(self) -> None:
        self.codes: dict[int | str, int] = {}

    def column(self, events: list[Event]) -> NDArray[np.int64]:
        """Correlation ids as they are (integers), -1 for none; other ids get codes below -1."""
        try:
            # Every event has args, and every id is an integer or absent (-1, the default).
            col = np.fromiter(map(_CORR, events), np.int64, len(events))
            if not (col < -1).any():  # below -1 are the codes of other ids
                return col
        except (AttributeError, TypeError, ValueError, OverflowError):
            pass
        corrs = _correlations(events)
        try:
            col = np.fromiter(map(_NONE_IS_MINUS_ONE.get, corrs, corrs), np.int64, len(corrs))
            if not (col < -1).any():
                return col
        except (TypeError, ValueError, OverflowError):
            pass
        # Some id is not an integer from -1 up: those get codes below -1, the others stay as
        # they are (so they still meet their launches, which may sit in another column). A
        # string of digits is its integer, as the passes above read it in every other chunk.
        ids = self.codes

        def code(c: int | str | None) -> int:
            if c is None:
                return -1
            if type(c) is str:
                try:
                    c = int(c)
                except ValueError:
                    pass
            if type(c) is int and -1 <= c < 1 << 63:
                return c
            got = ids.get(c)
            if got is None:
                got = ids[c] = -2 - len(ids)
            return got

        return np.fromiter(map(code, corrs), np.int64, len(corrs))

    def translation(self, theirs: dict[int | str, int]) -> dict[int, int]:
        """Their codes (a piece's, made by another ``CorrelationIds``) -> ours, adding their ids."""
        return {local: self.codes.setdefault(cid, -2 - len(self.codes)) for cid, local in theirs.items()}


def recode(corr: NDArray[np.int64], translation: dict[int, int]) -> NDArray[np.int64]:
    """``corr`` with its codes translated (``CorrelationIds.translation``); integer ids stay."""
    if not translation:
        return corr
    return np.fromiter((translation.get(c, c) for c in corr.tolist()), np.int64, len(corr))


def link_by_id(
    runtime: NDArray[np.int64], launch_ids: NDArray[np.int64], kernel_ids: NDArray[np.int64]
) -> NDArray[np.int64]:
    """For each device event, the runtime call (an index among the host spans, from ``runtime``)
    with the same correlation id, or -1."""
    has = launch_ids != -1
    if not has.all():
        runtime, launch_ids = runtime[has], launch_ids[has]
    if not len(launch_ids):
        return np.full(len(kernel_ids), -1, np.int64)
    if (launch_ids[1:] > launch_ids[:-1]).all():
        ids, launch = launch_ids, runtime  # ids already rise in file order (the six H100/MI300X fixtures)
    else:
        # Sorted by id (stable, so a repeated id keeps its launches in order), the last launch of
        # each id wins, as a dict built in order would have it.
        by_id = np.argsort(launch_ids, kind="stable")
        ids = launch_ids[by_id]
        last = np.ones(len(ids), bool)
        np.not_equal(ids[1:], ids[:-1], out=last[:-1])
        ids, launch = ids[last], runtime[by_id[last]]
    # Each kernel finds its id by bisection.
    at = np.searchsorted(ids, kernel_ids)
    at[at == len(ids)] = 0
    return np.where(ids[at] == kernel_ids, launch[at], -1).astype(np.int64)


def link_flows(trace: Trace, flows: list[FlowStart]) -> None:
    """Link the device events still unlinked through ``ac2g`` flows: the flow that ends where the
    event starts begins at its launch."""
    link = trace.link
    unlinked = np.flatnonzero(link < 0).tolist()
    if not unlinked or not flows:
        return
    starts: dict[str, tuple[int | str, int | str, float]] = {}
    finishes: dict[tuple[int | str, int | str, float], str] = {}
    for f in flows:
        if f.id is not None:
            if type(f) is FlowEnd:
                finishes[(f.pid, f.tid, f.ts)] = str(f.id)
            else:
                starts[str(f.id)] = (f.pid, f.tid, f.ts)
    threads = trace.threads
    spans, kernels = trace.spans, trace.kernels
    runtime = np.flatnonzero(trace.host_mask(RUNTIME_CATS)).tolist()
    by_place = {(*threads[int(spans.thread[i])], float(spans.ts[i])): i for i in runtime}
    for k in unlinked:
        fid = finishes.get((*threads[int(kernels.thread[k])], float(kernels.ts[k])))
        src = starts.get(fid) if fid is not None else None
        if src is not None:
            link[k] = by_place.get(src, -1)


def needs_flows(trace: Trace) -> bool:
    """Whether flows could link what correlation ids did not: some device event is unlinked and
    some device event or launch has no correlation id (a flow starts at a launch and ends at its
    kernel under the same id, so a kernel whose id names no launch has no flow either)."""
    if not len(trace.kernels) or not (trace.link < 0).any():
        return False
    return trace.ids_missing
