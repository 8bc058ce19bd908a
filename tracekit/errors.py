"""Error classes. The CLI maps each to an exit code and prints one line, never a traceback.

Errors about an input carry their parts as fields (``kind``, ``problem``, ``advice``): code that
needs one part reads the field, never the message.
"""

from __future__ import annotations


class TracekitError(Exception):
    """Base class for errors tracekit reports to the user."""

    exit_code = 1


class UserError(TracekitError):
    """Bad input or arguments: a clear one-line message, exit code 2."""

    exit_code = 2


class InputError(UserError):
    """What is wrong with one input file: ``problem`` says what, ``advice`` what to do (may be
    empty), ``kind`` names the problem for code that reacts to it. The message is
    ``path: problem; advice``."""

    def __init__(self, path: str, problem: str, *, kind: str, advice: str = "") -> None:
        self.path = path
        self.problem = problem
        self.kind = kind
        self.advice = advice
        super().__init__(f"{path}: {self.detail}")

    @property
    def detail(self) -> str:
        """The message without the path."""
        return f"{self.problem}; {self.advice}" if self.advice else self.problem


class NotARegularFile(InputError):
    """Not a readable regular file. ``kind``: ``missing``, ``link-loop``, ``unreadable``,
    ``directory``, ``fifo`` or ``device``."""


class TraceFormatError(InputError):
    """A file that is not a usable trace (truncated, foreign, empty).

    ``kind``: ``json`` (invalid JSON), ``truncated`` (JSON that ends too soon), ``gzip``, ``depth``
    (nested too deep), ``budget`` (inflates past the budget), ``empty``, ``not-json``,
    ``not-a-trace``, ``no-events``, ``not-a-file``. ``has_prefix``: events before the damage can be
    read (``--partial``); ``offset``: the byte of the JSON text where the damage is, where known.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        kind: str = "not-a-trace",
        advice: str = "",
        has_prefix: bool = False,
        offset: int | None = None,
    ) -> None:
        super().__init__(path, problem, kind=kind, advice=advice)
        self.has_prefix = has_prefix
        self.offset = offset


class SettingError(UserError):
    """A setting (an environment variable or option) outside what it accepts: ``name`` and the
    accepted range are in the message."""

    def __init__(self, name: str, given: object, accepts: str) -> None:
        self.name = name
        super().__init__(f"{name}={str(given)[:32]!r}: {accepts}")


class CheckFailed(TracekitError):
    """A --check expression of the report did not hold (exit code 1)."""

    exit_code = 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a capture, once the finished contexts are saved: carries the run folder, so
    the command line can still print its path."""

    def __init__(self, run_dir: object) -> None:
        super().__init__()
        self.run_dir = run_dir
