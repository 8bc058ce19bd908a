"""The in-memory trace model: only what analysis needs, in compact typed records.

Decoding produces ``Event`` structs directly (msgspec fills only the declared fields and skips
the rest inside its C decoder); the builder then keeps references to the events analysis needs
and drops everything else (Python frames, memory instants, shapes, stacks). No event is copied,
which is what keeps loading fast and large traces within memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import msgspec

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
    external_id: int | str | None = msgspec.field(default=None, name="External id")
    stream: int | str | None = None


class Event(msgspec.Struct, gc=False):
    """One Chrome-trace event, typed; unknown fields are skipped while decoding.

    The ``tk_*`` fields are filled by the builder, not read from the file: ``tk_parent`` is the
    index of the innermost enclosing host span on the same thread (host spans), ``tk_child`` the
    time its direct children cover (for self time), ``tk_link`` the index of the launching
    runtime call (device events); -1 means none.
    """

    ph: str = ""
    name: str = ""
    cat: str = ""
    pid: int | str = 0
    tid: int | str = 0
    ts: float = 0.0
    dur: float = 0.0
    id: int | str | None = None
    args: Args | None = None
    tk_parent: int = -1
    tk_child: float = 0.0
    tk_link: int = -1

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
    def stream(self) -> str:
        a = self.args
        s = a.stream if a is not None and a.stream is not None else self.tid
        return f"{self.pid}/{s}"

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


class DeviceProps(msgspec.Struct):
    name: str = ""


class DistributedInfo(msgspec.Struct):
    rank: int | None = None


class TraceDoc(msgspec.Struct):
    traceEvents: list[Event]  # noqa: N815 - Chrome trace field name
    deviceProperties: list[DeviceProps] = []  # noqa: N815
    distributedInfo: DistributedInfo | None = None  # noqa: N815


@dataclass
class Trace:
    """A loaded trace: host spans (nested per thread), device events, GPU-side annotations."""

    path: str
    host: list[Event] = field(default_factory=list)
    device: list[Event] = field(default_factory=list)
    gpu_annotations: list[Event] = field(default_factory=list)
    device_names: list[str] = field(default_factory=list)
    rank: int | None = None
    partial: bool = False
    skipped_events: int = 0

    @property
    def kind(self) -> Literal["gpu", "cpu"]:
        return "gpu" if self.device else "cpu"
