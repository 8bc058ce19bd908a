"""Perfetto: enriched traces (``export``) and serving one to ui.perfetto.dev (``serve``)."""

# The Perfetto UI's content-security policy lets it fetch from http://127.0.0.1:9001 only.
DEFAULT_PORT = 9001
