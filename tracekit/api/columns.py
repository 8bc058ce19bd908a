"""The columns of the Python API's tables: names as in the JSON schemas, and their kinds
(``Table.to_pandas`` gives each kind its pandas dtype)."""

from __future__ import annotations

from tracekit.api.table import ACHIEVED_KINDS, Kind

CATEGORY_KINDS: dict[str, Kind] = {
    "trace": "str",
    "rank": "int",
    "category": "category",
    "time_us": "float",
    "count": "int",
}
KERNEL_KINDS: dict[str, Kind] = {
    "trace": "str",
    "rank": "int",
    "name": "str",
    "kernel": "str",
    "category": "category",
    "rule": "category",
    "count": "int",
    "time_us": "float",
    "mean_us": "float",
    "min_us": "float",
    "max_us": "float",
    "p50_us": "float",
}
PHASE_KINDS: dict[str, Kind] = {
    "trace": "str",
    "phase": "category",
    "step": "int",
    "context_tokens": "int",
    "time_us": "float",
    "span_us": "float",
    "busy_us": "float",
    "idle_us": "float",
    "attention_us": "float",
    "attention_share": "float",
}
RANK_KINDS: dict[str, Kind] = {
    "rank": "int",
    "source": "str",
    "traces": "int",
    "busy_us": "float",
    "idle_us": "float",
    "attention_us": "float",
    "communication_us": "float",
    "exposed_communication_us": "float",
    "step_us": "float",
    "steps": "int",
}
STEP_KINDS: dict[str, Kind] = {
    "trace": "str",
    "step": "int",
    "phase": "category",
    "source": "category",
    "requests": "int",
    "query_tokens": "int",
    "kv_tokens": "int",
    "attention_us": "float",
    "other_us": "float",
    "idle_us": "float",
    "span_us": "float",
    "attention_share": "float",
    "start_us": "float",
}
LIMIT_STEP_KINDS: dict[str, Kind] = {
    "trace": "str",
    "step": "int",
    "phase": "category",
    "kv_tokens": "int",
    **{f"attention_{k}": v for k, v in ACHIEVED_KINDS.items()},
    **{f"gemm_{k}": v for k, v in ACHIEVED_KINDS.items()},
    "gemm_source": "category",
    **{f"step_{k}": v for k, v in ACHIEVED_KINDS.items()},
}
LIMIT_KERNEL_KINDS: dict[str, Kind] = {
    "trace": "str",
    "name": "str",
    "kernel": "str",
    **ACHIEVED_KINDS,
    "shaped_count": "int",
}
LAUNCH_KINDS: dict[str, Kind] = {
    "trace": "str",
    "name": "str",
    "kernel": "str",
    "category": "category",
    "rule": "category",
    "stream": "str",
    "start_us": "float",
    "dur_us": "float",
    "time_us": "float",
    "phase": "category",
    "step": "int",
    "context_tokens": "int",
}
