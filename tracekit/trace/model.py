"""The in-memory trace model: only what analysis needs, in compact typed records and columns.

Decoding produces typed records directly: msgspec reads each event's ``ph`` and builds an
``Event`` (complete spans), a flow end, or an empty ``Skipped`` (every other phase: metadata,
instants, counters), filling only the declared fields and skipping the rest inside its C
decoder. The builder keeps references to the events analysis needs and drops everything else
(Python frames, memory instants, shapes, stacks); what it derives (nesting, launch links) lives in
numpy columns on the ``Trace``, not on the events.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import ClassVar, Literal, TypeVar, Union, cast

import msgspec
import numpy as np
from numpy.typing import NDArray

# Kinds of device activity, in Kineto's ``cat`` vocabulary (older traces capitalise them).
DEVICE_CATS = frozenset({"kernel", "gpu_memcpy", "gpu_memset", "Kernel", "Memcpy", "Memset"})
# Host spans that can enclose a launch (their names form the scope stack of a kernel).
HOST_CATS = frozenset({"cpu_op", "user_annotation", "cuda_runtime", "cuda_driver", "Operator", "Runtime"})
OP_CATS = frozenset({"cpu_op", "Operator"})
RUNTIME_CATS = frozenset({"cuda_runtime", "cuda_driver", "Runtime"})
GPU_ANNOTATION_CAT = "gpu_user_annotation"
# Python frames are dropped, except those that name a scope analysis can use: ``nn.Module``
# scopes (from ``with_modules``) and the attention / rotary / norm helpers of HF models.
PYTHON_SCOPE_PATTERN = re.compile(r"^nn\.Module: |attention_forward|apply_rotary|rotary_emb|rms_?norm", re.I)


class Args(msgspec.Struct, gc=False):
    """The few ``args`` fields analysis reads; all others are skipped by the decoder."""

    correlation: int | str | None = None


class Event(msgspec.Struct, gc=False, tag_field="ph", tag="X"):
    """One complete (``"ph": "X"``) Chrome-trace event, typed; unknown fields are skipped while decoding."""

    name: str = ""
    cat: str = ""
    pid: int | str = 0
    tid: int | str = 0
    ts: float = 0.0
    dur: float = 0.0
    args: Args | None = None

    @property
    def end(self) -> float:
        return self.ts + self.dur

    @property
    def correlation(self) -> int | None:
        a = self.args
        if a is None or a.correlation is None:
            return None
        c = a.correlation
        return c if isinstance(c, int) else (int(c) if c.lstrip("-").isdigit() else None)

    @property
    def kind(self) -> Literal["kernel", "memcpy", "memset", "cpu"]:
        c = self.cat
        if c in ("kernel", "Kernel"):
            return "kernel"
        if c in ("gpu_memcpy", "Memcpy"):
            return "memcpy"
        if c in ("gpu_memset", "Memset"):
            return "memset"
        return "cpu"


class FlowStart(msgspec.Struct, gc=False, tag_field="ph", tag="s"):
    """The host end of a flow arrow (``ac2g``: launch to kernel)."""

    cat: str = ""
    id: int | str | None = None
    pid: int | str = 0
    tid: int | str = 0
    ts: float = 0.0


class FlowEnd(FlowStart, tag="f"):
    """The device end of a flow arrow."""


class Skipped(msgspec.Struct, gc=False, tag_field="ph", tag="M"):
    """Any other phase (metadata, instants, counters, async, begin/end): decoded as nothing at all."""

    cat: ClassVar[str] = ""


# The other phases of the Chrome trace format; a phase outside this table makes the typed decode
# fail, and the loader falls back to its lenient per-event path.
_OTHER_PHASES = "BEiICbneTtpPONDRcSFVv()"
SKIPPED: tuple[type[Skipped], ...] = (
    Skipped,
    *(
        cast("type[Skipped]", msgspec.defstruct(f"Skipped_{ord(p)}", [], bases=(Skipped,), tag=p))
        for p in _OTHER_PHASES
    ),
)
DECODED: tuple[type, ...] = (Event, FlowStart, FlowEnd, *SKIPPED)
# What the decoders produce for each element of ``traceEvents``: one of the ``DECODED`` types.
AnyEvent = Union[DECODED]  # type: ignore[valid-type]  # noqa: UP007
# Two passes for large traces: spans without the flows (launches link by correlation id), and,
# only where some launch has no correlation id, the flows without the spans.
_SKIP_FLOWS = tuple(
    cast("type[Skipped]", msgspec.defstruct(f"Skipped_{ord(p)}", [], bases=(Skipped,), tag=p)) for p in "sf"
)
SPANS_ONLY: tuple[type, ...] = (Event, *_SKIP_FLOWS, *SKIPPED)
FLOWS_ONLY: tuple[type, ...] = (
    cast("type[Skipped]", msgspec.defstruct("Skipped_88", [], bases=(Skipped,), tag="X")),
    FlowStart,
    FlowEnd,
    *SKIPPED,
)


class DeviceProps(msgspec.Struct):
    name: str = ""


class DistributedInfo(msgspec.Struct):
    rank: int | None = None


class TraceDoc(msgspec.Struct):
    traceEvents: list[AnyEvent]  # noqa: N815 - Chrome trace field name
    deviceProperties: list[DeviceProps] = []  # noqa: N815
    distributedInfo: DistributedInfo | None = None  # noqa: N815


@dataclass
class Trace:
    """A loaded trace: host spans (nested per thread), device events, GPU-side annotations."""

    path: str
    host: list[Event] = field(default_factory=list)
    device: list[Event] = field(default_factory=list)
    # Columns filled by the builder: ``parent[i]`` is the innermost host span enclosing host span
    # ``i`` on its thread, ``child[i]`` the time its direct children cover (self time = dur - child),
    # ``link[k]`` the host span (runtime call) that launched device event ``k``; -1 means none.
    parent: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    child: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    link: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    gpu_annotations: list[Event] = field(default_factory=list)
    device_names: list[str] = field(default_factory=list)
    rank: int | None = None
    partial: bool = False
    skipped_events: int = 0

    _cat_codes: tuple[int, int, NDArray[np.int64], dict[str, int]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    _name_codes: tuple[int, int, list[str], NDArray[np.int64], list[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def kind(self) -> Literal["gpu", "cpu"]:
        return "gpu" if self.device else "cpu"

    def host_names(self) -> tuple[list[str], NDArray[np.int64], list[str]]:
        """Host span names as (names, a code per span, the distinct names in code order)."""
        host = self.host
        cached = self._name_codes
        if cached is None or cached[0] != id(host) or cached[1] != len(host):
            names = list(map(_NAME_OF, host))
            codes, ids = factorize(names)
            cached = self._name_codes = (id(host), len(host), names, codes, list(ids))
        return cached[2], cached[3], cached[4]

    def host_mask(self, cats: frozenset[str]) -> NDArray[np.bool_]:
        """Which host spans have a ``cat`` in ``cats`` (the categories are coded once per trace)."""
        host = self.host
        cached = self._cat_codes
        if cached is None or cached[0] != id(host) or cached[1] != len(host):
            codes, ids = factorize(list(map(_CAT_OF, host)))
            cached = self._cat_codes = (id(host), len(host), codes, ids)
        _, _, codes, ids = cached
        want = [ids[c] for c in cats if c in ids]
        return np.isin(codes, want) if want else np.zeros(len(host), bool)


H = TypeVar("H", bound=Hashable)


def factorize(values: list[H]) -> tuple[NDArray[np.int64], dict[H, int]]:
    """A code per value (0, 1, ... in order of first appearance) and the value-to-code table."""
    ids: dict[H, int] = dict.fromkeys(values, 0)
    for i, v in enumerate(ids):
        ids[v] = i
    return np.fromiter(map(ids.__getitem__, values), np.int64, len(values)), ids


_CAT_OF = attrgetter("cat")
_NAME_OF = attrgetter("name")
