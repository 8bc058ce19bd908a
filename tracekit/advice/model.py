"""The advice model: what advice rests on (``Basis``), what the user asks (``Plan``), and what comes
back (``Advice``, ``Projection``, ``AdviceSet``). Plain data, no torch, no rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from tracekit.limits.model import ModelShape
from tracekit.stats import Interval

Reps = NDArray[np.float64]

# Kinds, in the order a tie in predicted gain keeps them.
KINDS = ("measurement", "context-budget", "attention", "device", "progressive", "precision")


@dataclass(frozen=True)
class Point:
    """One measured context: its typical decode step, with bootstrap replicates where known."""

    context: int
    ms: float
    reps: Reps | None = field(default=None, compare=False, repr=False)
    ms_ci95: Interval | None = None
    prefill_s: float | None = None


@dataclass(frozen=True)
class Line:
    """ms (or s) = intercept + slope·context, with its bootstrap replicates (row b: the line through
    replicate b of every point) where the points had them."""

    intercept: float
    slope: float
    n: int
    r2: float
    lo: float  # the measured contexts it was fitted over
    hi: float
    intercepts: Reps | None = field(default=None, compare=False, repr=False)
    slopes: Reps | None = field(default=None, compare=False, repr=False)
    over: str = "contexts"  # what its points are ("contexts": a run's; "decode steps": a trace's)
    drawn: str = "the two-stage bootstrap replicates of every point"  # where its replicates come from

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x

    def reps_at(self, x: float) -> Reps | None:
        if self.intercepts is None or self.slopes is None:
            return None
        return self.intercepts + self.slopes * x


@dataclass(frozen=True)
class Check:
    """A measurement check that fired (from the report's findings, or said of a user's own timer)."""

    kind: str
    severity: str
    message: str


@dataclass(frozen=True)
class Basis:
    """Everything advice may rest on: measured points and their fits, the model's bytes, the device
    it ran on, and the measurement checks."""

    source: str  # "run traces/RUN" or "speeds given with --measured"
    points: tuple[Point, ...]
    decode: Line | None
    prefill: Line | None  # prefill seconds against prompt tokens
    shape: ModelShape | None
    device: str
    bandwidth_gbps: float | None
    bandwidth_source: str
    checks: tuple[Check, ...] = ()
    attn: str | None = None
    command: str | None = None  # the capture command that measured it (to vary one flag)
    rounds: int | None = None
    batch: int = 1  # sequences decoded together in a step (an engine's batch): tokens per step
    notes: tuple[str, ...] = ()  # what the input could not carry
    peak_tflops: float | None = None  # the device's dense peak in the model's dtype, where known (a prefill floor)
    bandwidth_measured: bool = False  # a copy bandwidth capture measured (a floor: a step may beat its ceiling)
    max_context: int | None = None  # the model's longest context, where its facts say (a run's manifest, a preset)

    @property
    def measured(self) -> bool:
        return bool(self.points)


@dataclass(frozen=True)
class Plan:
    """What the user asks about (each None: tracekit's default, said in the advice)."""

    target_tps: float | None = None
    target_itl_ms: float | None = None
    on: str | None = None  # a device of the table
    contexts: tuple[int, ...] = ()
    generate: int | None = None
    prompt: int | None = None
    keep: int | None = None
    every: int | None = None
    kv_bits: float | None = None
    weight_bits: float | None = None


@dataclass(frozen=True)
class Advice:
    kind: str
    claim: str
    predicted_gain: float | None  # tokens/s after / before - 1 (0.25: a quarter faster); None: not a speed-up
    predicted_gain_ci95: Interval | None
    rests_on: tuple[str, ...]
    assumptions: tuple[str, ...] = ()
    gain_basis: str = ""  # what the gain compares
    severity: str = "info"
    figures: Mapping[str, float | int | str | None] = field(default_factory=dict)
    figures_ci95: Mapping[str, Interval | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Projection:
    """One context on one device (and precision): the bytes a decode step reads and what they allow."""

    context: int
    device: str
    variant: str  # "as measured", "on NAME", "KV cache at 8 bits", ...
    weight_bytes: float
    kv_bytes: float
    bandwidth_gbps: float
    measured_tokens_per_s: float | None = None
    measured_tokens_per_s_ci95: Interval | None = None
    predicted_tokens_per_s: float | None = None
    predicted_tokens_per_s_ci95: Interval | None = None
    extrapolated: bool = False  # the prediction leaves the measured range of contexts
    batch: int = 1  # sequences per step; kv_bytes holds all of theirs

    @property
    def ceiling_tokens_per_s(self) -> float:
        return self.batch * self.bandwidth_gbps * 1e9 / (self.weight_bytes + self.kv_bytes)

    @property
    def bound_ms(self) -> float:
        """The least a step (of ``batch`` tokens) can take."""
        return (self.weight_bytes + self.kv_bytes) / (self.bandwidth_gbps * 1e9) * 1e3


@dataclass
class AdviceSet:
    source: str
    advice: list[Advice] = field(default_factory=list)
    projection: list[Projection] = field(default_factory=list)
    bound_explains: float | None = None
    bound_explains_ci95: Interval | None = None
    notes: list[str] = field(default_factory=list)
