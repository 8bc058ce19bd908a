"""Names of the record_function annotations tracekit writes into traces (pure Python).

The analysis side parses the same names (``tracekit.analysis.phases`` and the rule table), so a
trace from any backend says, for each slice of work: prefill or decode, step, context length, and
which part of a layer it is.
"""

from __future__ import annotations

from tracekit.analysis.phases import format_annotation

ATTENTION_CORE = "tracekit::attention_core"  # scores, softmax, weighted sum over the cache
KV_CACHE_WRITE = "tracekit::kv_cache_write"
NORM = "tracekit::norm"
ROPE = "tracekit::rope"
LM_HEAD = "tracekit::lm_head"
SAMPLING = "tracekit::sampling"
WARMUP = "tracekit::profiler_warmup"


def prefill(chunk: int, ctx: int, tokens: int) -> str:
    """Annotation for one prefill chunk; ``ctx`` is the context length once the chunk is in."""
    return format_annotation("prefill", chunk=chunk, ctx=ctx, tokens=tokens)


def decode(step: int, ctx: int) -> str:
    """Annotation for one decode step; ``ctx`` is the number of tokens the step attends over."""
    return format_annotation("decode", step=step, ctx=ctx)
