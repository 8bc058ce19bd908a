"""The input shapes and types torch.profiler records (``record_shapes=True``), read apart from the
columns: ``Input Dims`` and ``Input type`` of every event, in file order, for the few operators
whose shapes tell a step's context (``analysis.shapes``) or a model's facts (``limits.trace_facts``).
The loader does not keep them: most analyses never look, and they are large."""

from __future__ import annotations

from typing import Any

import msgspec


class InputArgs(msgspec.Struct, gc=False):
    dims: Any = msgspec.field(default=None, name="Input Dims")
    types: Any = msgspec.field(default=None, name="Input type")


class _Event(msgspec.Struct, gc=False):
    args: InputArgs | None = None


class _Doc(msgspec.Struct, gc=False):
    traceEvents: list[_Event] = msgspec.field(default_factory=list)  # noqa: N815 (the file's key)


def input_args(data: bytes) -> list[InputArgs | None] | None:
    """Each event's recorded inputs, by its position in the file (None: it has none); None when
    the document does not decode (the analysis then goes without shapes)."""
    try:
        events = (
            msgspec.json.decode(data, type=list[_Event])
            if data.lstrip()[:1] == b"["
            else msgspec.json.decode(data, type=_Doc).traceEvents
        )
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return [e.args for e in events]
