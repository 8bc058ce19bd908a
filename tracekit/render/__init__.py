"""What ``tracekit analyze`` shows: tables, JSON and CSV of one trace, and the summary and
per-rank tables of many."""
