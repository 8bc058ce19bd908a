"""Perfetto: enriched traces (tracekit's attribution inside the timeline) and a one-command viewer."""
