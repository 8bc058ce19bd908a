"""Write an enriched trace: the original events, plus tracekit's attribution as Perfetto can show it.

* every device event gets ``args["tracekit.category"]`` and ``args["tracekit.rule"]``, so
  Perfetto's SQL ``args`` table selects all attention kernels;
* a ``tracekit`` process holds one track of slices, one per phase and decode step (the name says
  phase, step, context and milliseconds; args carry the per-category split), and counter tracks
  for context tokens, step time and attention share, on the trace's own timestamps.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.attribute import attribute
from tracekit.analysis.result import AnalysisResult, PhaseResult
from tracekit.errors import UserError
from tracekit.files import atomic_open
from tracekit.manifest import ContextEntry, enriched_file
from tracekit.trace.model import Trace
from tracekit.trace.read import ReadOptions, as_number, decode_bytes, read_document

TRACEKIT_PID = 2_000_000_000  # a pid no real process has, so the tracekit track never merges


@dataclass
class ExportStats:
    events_in: int
    events_out: int
    added_events: int
    annotated_events: int
    bytes_in: int
    bytes_out: int
    bytes_baseline: int = 0  # the kept events re-encoded the same way, without tracekit's additions

    @property
    def enrichment_growth(self) -> float:
        """What the enrichment alone adds, independent of re-encoding and recompression."""
        return self.bytes_out / self.bytes_baseline - 1.0 if self.bytes_baseline else 0.0

    @property
    def growth(self) -> float:
        return self.bytes_out / self.bytes_in - 1.0 if self.bytes_in else 0.0


def _phase_label(p: PhaseResult) -> str:
    parts = [p.phase]
    if p.step is not None:
        parts.append(f"step {p.step}" if p.phase != "prefill" else f"chunk {p.step}")
    if p.context_tokens is not None:
        parts.append(f"ctx {p.context_tokens}")
    parts.append(f"{p.span_us / 1000:.2f} ms")
    return " · ".join(parts)


def tracekit_events(result: AnalysisResult, pid: int = TRACEKIT_PID) -> list[dict[str, Any]]:
    """The added events: metadata, one slice per phase/step, and counters."""
    out: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": "tracekit"}},
        {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": -1}},
        {"ph": "M", "name": "thread_name", "pid": pid, "tid": 1, "args": {"name": "phases and steps"}},
    ]
    for p in result.phases:
        cats = {f"{k}_ms": round(v.time_us / 1000, 4) for k, v in p.categories.items()}
        attn = p.categories.get("attention")
        share = (attn.time_us / p.span_us) if attn and p.span_us > 0 else 0.0
        args: dict[str, Any] = {
            "phase": p.phase,
            "step": p.step,
            "context_tokens": p.context_tokens,
            "device_ms": round(p.time_us / 1000, 4),
            "idle_ms": round(p.idle_us / 1000, 4),
            "attention_share": round(share, 4),
            **cats,
        }
        ts = round(p.start_us, 3)
        out.append(
            {
                "ph": "X",
                "name": _phase_label(p),
                "cat": "tracekit",
                "pid": pid,
                "tid": 1,
                "ts": ts,
                "dur": round(p.span_us, 3),
                "args": args,
            }
        )
        if p.context_tokens is not None:
            out.append(
                {
                    "ph": "C",
                    "name": "context tokens",
                    "pid": pid,
                    "tid": 0,
                    "ts": ts,
                    "args": {"tokens": p.context_tokens},
                }
            )
        out.append(
            {
                "ph": "C",
                "name": "step time (ms)",
                "pid": pid,
                "tid": 0,
                "ts": ts,
                "args": {"ms": round(p.span_us / 1000, 4)},
            }
        )
        out.append(
            {"ph": "C", "name": "attention share", "pid": pid, "tid": 0, "ts": ts, "args": {"share": round(share, 4)}}
        )
    return out


def _keep_range(result: AnalysisResult, window: str | None, max_steps: int | None) -> tuple[float, float] | None:
    if window is None and max_steps is None:
        return None
    lo, hi = float("-inf"), float("inf")
    if window is not None:
        lo, hi = result.window.start_us, result.window.start_us + result.window.dur_us
    if max_steps is not None:
        if max_steps <= 0:
            raise UserError("--max-steps must be at least 1")
        phases = [p for p in result.phases if lo <= p.start_us <= hi]
        if phases:
            last = phases[:max_steps][-1]
            lo = max(lo, phases[0].start_us)
            hi = min(hi, last.start_us + last.span_us)
    return lo, hi


def enrich(
    doc: dict[str, Any],
    trace: Trace,
    *,
    window: str | None = None,
    max_steps: int | None = None,
    pid: int = TRACEKIT_PID,
) -> tuple[dict[str, Any], AnalysisResult, int, int]:
    """Tag the device events of ``doc`` (the document ``trace`` was decoded from) in place and append
    tracekit's events; return (doc, analysis, events tagged, events added).

    The tags and the analysis come from one attribution, so they always agree."""
    att = attribute(trace)
    result = analyze_trace(trace, window, attribution=att)
    raw_events: list[Any] = doc["traceEvents"]
    for origin, code in zip(att.origin.tolist(), att.code.tolist()):
        d = att.decisions[code]
        raw = raw_events[origin]
        args = raw.get("args")
        if not isinstance(args, dict):
            args = raw["args"] = {}
        args["tracekit.category"] = d.category
        args["tracekit.rule"] = d.rule
    keep = _keep_range(result, window, max_steps)
    # An enriched trace exported again: tracekit's earlier events make way for the new ones.
    events = [o for o in raw_events if not (isinstance(o, dict) and o.get("pid") == pid)]
    if keep is not None:
        lo, hi = keep
        events = [o for o in events if _kept(o, lo, hi)]
        result.phases = [p for p in result.phases if lo <= p.start_us <= hi]
        events = _unbroken_flows(events, raw_events)
    added = tracekit_events(result, pid)
    doc["traceEvents"] = events + added
    return doc, result, len(att), len(added)


_TIMED_PHASES = frozenset({"X", "B", "E", "i", "I", "C", "s", "f"})


def _kept(o: Any, lo: float, hi: float) -> bool:
    """Whether a trim to ``[lo, hi]`` keeps this event: metadata and malformed events (which the
    analysis skipped, so cannot place) always, timed events that start inside or span ``lo``,
    nothing else."""
    if not isinstance(o, dict):
        return True
    ph = o.get("ph")
    ts = as_number(o.get("ts", 0.0))
    dur = as_number(o.get("dur", 0.0))
    if not isinstance(ph, str) or ts is None or ts != ts or (ph == "X" and (dur is None or dur != dur)):
        return True
    if ph == "M":
        return True
    if ph not in _TIMED_PHASES:
        return False
    dur = dur or 0.0
    return lo <= ts <= hi or (ts <= lo and ts + dur >= lo)


def _flow_key(o: Any) -> tuple[Any, Any] | None:
    if isinstance(o, dict) and o.get("ph") in ("s", "f", "t"):
        return (o.get("cat"), o.get("id"))
    return None


def _halves(events: list[Any], ph: str) -> set[tuple[Any, Any]]:
    return {k for o in events if (k := _flow_key(o)) is not None and o["ph"] == ph}


def _unbroken_flows(kept: list[Any], original: list[Any]) -> list[Any]:
    """After trimming, drop flow halves whose partner the trim removed (the original's own orphans
    stay, as everything else the original had): a trim never creates a dangling arrow."""
    whole_before = _halves(original, "s") & _halves(original, "f")
    whole_after = _halves(kept, "s") & _halves(kept, "f")
    broken = whole_before - whole_after
    return [o for o in kept if (k := _flow_key(o)) is None or k not in broken]


def _gz_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6, mtime=0))


# Peak memory of an export per byte of the trace's JSON: every event becomes a Python object, is
# tagged, and is encoded again (measured in docs/performance.md, "Export"). An export that would
# need more than the memory this process may use (or TRACEKIT_EXPORT_MEMORY) is refused up front.
EXPORT_FACTOR = 14
EXPORT_MEMORY_ENV = "TRACEKIT_EXPORT_MEMORY"


def check_export_memory(src: Path, memory: int | None = None) -> None:
    """Refuse, before reading it, a trace whose export would need more than ``memory`` bytes
    (None: what this process may still allocate)."""
    from tracekit.trace.read import available_memory, decoded_size
    from tracekit.units import format_size

    need = EXPORT_FACTOR * decoded_size(src)
    have = available_memory() if memory is None else memory
    if need > have:
        where = f"{EXPORT_MEMORY_ENV}={format_size(have)}" if memory is not None else "the memory this process may use"
        raise UserError(
            f"{src}: exporting it needs about {EXPORT_FACTOR}x its JSON in memory ({format_size(need)}), over "
            f"{format_size(have)} ({where}); 'tracekit analyze' reads it in far less, or raise the limit, e.g. "
            f"{EXPORT_MEMORY_ENV}={max(1, -(-need // 10**9))}G, on a machine that has it"
        )


# Top-level fields of a trace that may describe the machine it came from (foreign traces carry
# environment variables, host names and command lines there): ``strip_metadata`` drops them.
METADATA_FIELDS = ("metadata", "systemTraceEvents", "otherData", "deviceProperties", "distributedInfo")


def enrich_data(
    src: Path,
    *,
    window: str | None = None,
    max_steps: int | None = None,
    measure_growth: bool = False,
    strip_metadata: bool = False,
    gz: bool = True,
    read: ReadOptions | None = None,
    memory: int | None = None,
) -> tuple[bytes, ExportStats]:
    """The enriched trace of ``src`` (read as ``read`` says) as bytes (gzipped when ``gz``), and
    its statistics (``bytes_out`` is the length of those bytes)."""
    src = Path(src)
    if src.is_dir():
        raise UserError(f"{src}: is a directory; give a trace file or a run directory")
    if not src.exists():
        raise UserError(f"{src}: no such file")
    check_export_memory(src, memory)
    raw = read_document(src, read)
    n_in = len(raw.events)
    trace = decode_bytes(str(src), raw.text, read)
    doc, result, annotated, n_added = enrich(raw.doc, trace, window=window, max_steps=max_steps)
    del raw, trace  # the document holds what is written; the text and columns are done
    if strip_metadata:
        for key in METADATA_FIELDS:
            doc.pop(key, None)
    data = msgspec.json.encode(doc)
    baseline = 0
    if measure_growth:
        kept = doc["traceEvents"][: len(doc["traceEvents"]) - n_added]
        for o in kept:
            a = o.get("args") if isinstance(o, dict) else None
            if isinstance(a, dict):
                a.pop("tracekit.category", None)
                a.pop("tracekit.rule", None)
        plain = msgspec.json.encode({**doc, "traceEvents": kept})
        baseline = _gz_size(plain) if gz else len(plain)
    n_out = len(doc["traceEvents"])
    del doc
    if gz:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    stats = ExportStats(
        events_in=n_in,
        events_out=n_out,
        added_events=n_added,
        annotated_events=annotated,
        bytes_in=src.stat().st_size,
        bytes_out=len(data),
        bytes_baseline=baseline,
    )
    return data, stats


def enrich_file(
    src: Path,
    dest: Path,
    *,
    window: str | None = None,
    max_steps: int | None = None,
    overwrite: bool = True,
    measure_growth: bool = False,
    strip_metadata: bool = False,
    read: ReadOptions | None = None,
    memory: int | None = None,
) -> ExportStats:
    """Read ``src`` (as ``read`` says), write the enriched trace to ``dest`` (gzipped when it ends
    in .gz), atomically."""
    dest = Path(dest)
    data, stats = enrich_data(
        src,
        window=window,
        max_steps=max_steps,
        measure_growth=measure_growth,
        strip_metadata=strip_metadata,
        gz=dest.name.endswith(".gz"),
        read=read,
        memory=memory,
    )
    with atomic_open(dest, overwrite=overwrite) as fh:
        fh.write(data)
    return stats


def enrich_context(run_dir: Path, entry: ContextEntry) -> None:
    """Write the enriched twin of one captured context and name it in its manifest entry; capture
    calls this as each context reaches the disk (``tracekit capture`` without ``--no-enrich``)."""
    if entry.trace is None:
        return
    name = enriched_file(entry.trace)
    try:
        enrich_file(run_dir / entry.trace, run_dir / name)
    except Exception as exc:  # noqa: BLE001 - enrichment is a convenience; the raw trace stands
        entry.error = f"enrichment failed: {exc}"
        return
    entry.enriched_trace = name
