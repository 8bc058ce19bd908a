"""Error classes. The CLI maps each to an exit code and prints one line, never a traceback."""

from __future__ import annotations


class TracekitError(Exception):
    """Base class for errors tracekit reports to the user."""

    exit_code = 1


class UserError(TracekitError):
    """Bad input or arguments: a clear one-line message, exit code 2."""

    exit_code = 2


class TraceFormatError(UserError):
    """A file that is not a usable trace (truncated, foreign, empty)."""

    def __init__(self, path: str, problem: str, *, has_prefix: bool = False, kind: str = "") -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.has_prefix = has_prefix
        self.kind = kind  # "json", "gzip", "depth", "budget" for damage the loaders name alike


class CheckFailed(TracekitError):
    """A --check expression of the report did not hold (exit code 1)."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a capture, once the finished contexts are saved: carries the run folder, so
    the command line can still print its path."""

    def __init__(self, run_dir: object) -> None:
        super().__init__()
        self.run_dir = run_dir
