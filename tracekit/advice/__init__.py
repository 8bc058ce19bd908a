"""``advise``: what would help, with numbers. Each piece of advice rests on the run's own fits and
facts (or on model facts and speeds measured elsewhere), says what it rests on and what it
assumes, and carries a 95 % interval where it comes from measurements. Measurement checks lead;
the rest is ranked by predicted gain in tokens/s.

Pure Python (numpy): the report builds its section "What would help" from the same code."""

from __future__ import annotations

from dataclasses import replace

from tracekit.advice import attention, basis, budget, measurement, progressive, projection
from tracekit.advice.model import KINDS, Advice, AdviceSet, Basis, Plan
from tracekit.analysis.steps import StepTable
from tracekit.limits.devices import Device
from tracekit.limits.model import ModelShape
from tracekit.limits.roofline import Roof

__all__ = ["Advice", "AdviceSet", "Basis", "Plan", "advise", "advise_steps"]


def _rank(items: list[Advice]) -> list[Advice]:
    first = [a for a in items if a.kind == "measurement"]
    rest = [a for a in items if a.kind != "measurement"]
    rest.sort(key=lambda a: (a.predicted_gain is None, -(a.predicted_gain or 0.0), KINDS.index(a.kind)))
    return first + rest


def advise(
    b: Basis, plan: Plan, *, on: Device | None = None, compare: tuple[Basis, ...] = (), run: str = "RUN"
) -> AdviceSet:
    """Advice on ``b`` for ``plan``; ``on`` is another device to project to, ``compare`` other runs
    of the same model (another attention implementation), ``run`` how the user names ``b``."""
    out = AdviceSet(source=b.source)
    items = measurement.measurement(b)
    out.notes += list(b.notes)
    if b.batch > 1:
        out.notes.append(
            f"the steps decode {b.batch} sequences together: tokens/s and ceilings count all of them; the context "
            "budget and the reset plan are per sequence (one token a step each)"
        )
    found = budget.context_budget(b, plan)
    if found is not None:
        items.append(found)
    share, share_ci, bound, added = projection.bound_explains(b)
    out.bound_explains, out.bound_explains_ci95 = share, share_ci
    others = [a for a in (attention.compared(b, o) for o in compare) if a is not None]
    items += others
    if not others and b.measured and not compare:
        cmd = attention.measure_command(b, run)
        if cmd is not None:
            items.append(cmd)
    lev = attention.lever(b, share, share_ci, bound, added)
    if lev is not None:
        items.append(lev)
    out.projection = projection.measured_rows(b, plan.contexts)
    if on is not None:
        rows = projection.device_rows(b, on, plan.contexts)
        out.projection += rows
        dev = projection.device_advice(b, on, rows)
        if dev is not None:
            items.append(dev)
    if b.measured:
        prog = progressive.progressive(b, plan)
        if prog is not None:
            items.append(prog)
    prec, rows = projection.precision(b, plan.kv_bits, plan.weight_bits, plan.contexts)
    items += prec
    out.projection += rows
    if measurement.doubted(b):
        note = "a measurement the checks above doubt"
        items = [a if a.kind == "measurement" else replace(a, assumptions=(*a.assumptions, note)) for a in items]
    out.advice = _rank(items)
    return out


def advise_steps(
    steps: StepTable,
    plan: Plan,
    *,
    shape: ModelShape | None = None,
    roof: Roof | None = None,
    roof_source: str = "",
    on: Device | None = None,
    what: str = "the traces",
    run: str = "TRACES",
) -> AdviceSet:
    """Advice on engine traces' steps (``analysis.steps``) recorded on ``roof``'s device, with what
    they cannot carry said in notes."""
    b = basis.from_steps(steps, shape, roof, what, roof_source)
    out = advise(b, plan, on=on, run=run)
    if not b.points:
        out.notes.append(
            "no decode step with a known KV length: nothing to fit or project (record shapes with "
            "record_shapes=True where the engine writes no step annotation)"
        )
        return out
    if shape is None:
        out.notes.append("no --model-config: the bytes a step reads are unknown, so no bound or projection")
    if roof is None:
        out.notes.append("no --device: the bandwidth the traces ran at is unknown, so no bound")
    if len(b.points) < 2:
        out.notes.append(
            f"the decode steps hold {len(b.points)} context length: a fit needs two or more "
            "(a longer generation, or traces at several prompt lengths)"
        )
    return out
