"""The ``tracekit`` command line: a thin layer over the library, one module per command.

The error policy lives here: every failure prints one line (``tracekit: error: ...``, control
characters escaped) and exits 2, whether tracekit raised it (bad flags, unreadable traces), the
operating system did (disk full, permission, a vanished file) or the interpreter did (out of
memory); a failed ``--check`` exits 1; Ctrl-C exits 130, and a second Ctrl-C while tracekit saves
what is finished is acknowledged, not obeyed (a third quits at once). No traceback reaches the
user, unless ``TRACEKIT_DEBUG=1`` asks for one.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

import typer

from tracekit.cli import advise as _advise
from tracekit.cli import analyze as _analyze
from tracekit.cli import capture as _capture
from tracekit.cli import devices as _devices
from tracekit.cli import diff as _diff
from tracekit.cli import perfetto as _perfetto
from tracekit.cli import report as _report
from tracekit.errors import TracekitError
from tracekit.sanitize import printable

app = typer.Typer(
    name="tracekit",
    help=(
        "Explain why LLM token generation slows down as the context grows, from real torch.profiler traces.\n\n"
        "Typical flow: 'tracekit capture' records a sweep of context lengths, 'tracekit report RUN' explains it, "
        "'tracekit open RUN' shows it in Perfetto. 'tracekit analyze TRACE' works on any torch.profiler trace."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from tracekit import __version__

        print(f"tracekit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print tracekit's version and exit."
    ),
) -> None:
    """The options before a command: --version, -h (the app's help text is the one shown)."""


def _command(fn: Callable[..., None]) -> Callable[..., None]:
    """A command that says "interrupted" when Ctrl-C ends it (typer turns that into a silent exit
    130); a command that handles Ctrl-C itself says what it kept in its own words."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except KeyboardInterrupt:
            _say("tracekit: interrupted")
            raise

    return run


COMMANDS: dict[str, Callable[..., None]] = {
    "capture": _capture.capture,
    "analyze": _analyze.analyze,
    "report": _report.report,
    "diff": _diff.diff,
    "advise": _advise.advise,
    "export": _perfetto.export,
    "open": _perfetto.open_cmd,
    "devices": _devices.devices_cmd,
}
# Each command's --help ends with its page in docs/ (export and open share one).
DOCS = {"export": "perfetto", "open": "perfetto", "devices": "limits"}
for _name, _fn in COMMANDS.items():
    _page = DOCS.get(_name, _name)
    app.command(_name, epilog=f"Docs: docs/{_page}.md (all pages: docs/README.md).")(_command(_fn))


def _say(line: str) -> None:
    if sys.stderr is not None:  # None when the process started with its stderr closed
        try:
            print(printable(" ".join(line.split("\n"))), file=sys.stderr, flush=True)
        except (OSError, ValueError):  # 2>/dev/full, a closed stream: the exit code still says it
            pass


def _os_error(exc: OSError) -> str:
    from tracekit.files import os_problem

    where = exc.filename if exc.filename is not None else None
    return f"{where}: {os_problem(exc)}" if where else os_problem(exc)


class _Presses:
    """How many times Ctrl-C was pressed during the command."""

    count = 0


@contextmanager
def _interrupts() -> Iterator[_Presses]:
    """First Ctrl-C: KeyboardInterrupt, as usual. While tracekit then saves what is finished, a
    second one only says so; a third quits at once."""
    presses = _Presses()
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield presses
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        presses.count += 1
        if presses.count == 1:
            raise KeyboardInterrupt
        if presses.count == 2:
            os.write(2, b"tracekit: still saving what is finished; press Ctrl-C again to quit at once\n")
            return
        os.write(2, b"tracekit: interrupted again; quitting without saving\n")
        os._exit(130)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield presses
    finally:
        # After an interrupt the process is on its way out: later presses change nothing.
        signal.signal(signal.SIGINT, signal.default_int_handler if presses.count == 0 else signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (``sys.exit(main())``)."""
    debug = os.environ.get("TRACEKIT_DEBUG") == "1"
    if sys.stdout is None:  # the process started with its stdout closed (>&-)
        _say(
            "tracekit: error: stdout is closed; tracekit writes its results there (redirect it to a file or /dev/null)"
        )
        return 2
    try:
        with _interrupts():
            return _run(argv, debug)
    except KeyboardInterrupt:  # pressed between the command's end and the handler's removal
        _say("tracekit: interrupted")
        return 130


# The variables that are not read settings (those are ``ReadOptions.from_env``'s), with what each
# accepts: checked before any command runs, so a bad one is one line, not a silent default.
_CHOICES = {"TRACEKIT_PROGRESS": ("0", "1"), "TRACEKIT_DEBUG": ("0", "1")}
_COUNTS = {"TRACEKIT_MAX_CONTEXTS": (1, 10**7), "TRACEKIT_MAX_STEPS": (1, 10**9), "TRACEKIT_MAX_WALK": (1, 10**9)}


_SIZES = {"TRACEKIT_EXPORT_MEMORY": (10**6, 10**15)}


def _check_environment() -> None:
    from tracekit.errors import SettingError
    from tracekit.trace.read import ReadOptions
    from tracekit.units import format_size, parse_size

    ReadOptions.from_env()
    for name, (lo, hi) in _SIZES.items():
        given = os.environ.get(name)
        if given:
            try:
                ok = lo <= parse_size(given) <= hi
            except ValueError:
                ok = False
            if not ok:
                raise SettingError(name, given, f"give a size from {format_size(lo)} to {format_size(hi)}")
    for name, choices in _CHOICES.items():
        given = os.environ.get(name)
        if given and given not in choices:
            raise SettingError(name, given, f"give one of {', '.join(choices)}")
    for name, (lo, hi) in _COUNTS.items():
        given = os.environ.get(name)
        if given and not (len(given) <= 10 and given.isdigit() and lo <= int(given) <= hi):
            raise SettingError(name, given, f"give a whole number from {lo:,} to {hi:,}")


def _run(argv: list[str] | None, debug: bool) -> int:
    args = list(sys.argv[1:] if argv is None else argv) or ["--help"]
    try:
        _check_environment()
        rv = app(args=args, standalone_mode=False, prog_name="tracekit")
    except TracekitError as exc:
        if debug:
            raise
        _say(f"tracekit: error: {exc}")
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _say("tracekit: interrupted")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # Click's errors: exit code 2 for a usage error, 1 otherwise
        msg = exc.format_message().replace("\n", " ")
        if exc.exit_code == 2:
            cmd = f" {args[0]}" if args[0] in COMMANDS else ""
            msg += f" (see 'tracekit{cmd} --help')"
        _say(f"tracekit: error: {msg}")
        return exc.exit_code
    except OSError as exc:
        if debug:
            raise
        _say(f"tracekit: error: {_os_error(exc)}")
        return 2
    except MemoryError:
        if debug:
            raise
        _say(
            "tracekit: error: out of memory; the input is too large for this machine (or set TRACEKIT_MAX_INFLATE lower)"
        )
        return 2
    except RecursionError:
        if debug:
            raise
        _say("tracekit: error: the input is nested too deeply to read")
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of the error policy: never a traceback
        if debug:
            raise
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _say(
            f"tracekit: error: internal error ({exc.__class__.__name__}{': ' + detail if detail else ''}); "
            "a bug in tracekit: rerun with TRACEKIT_DEBUG=1 for the traceback and report it"
        )
        return 2
    return int(rv) if isinstance(rv, int) else 0


def entry() -> None:
    """Run the command and leave with its exit code (the console script and ``python -m tracekit``)."""
    code = main()
    # Python resets its own handlers while the interpreter shuts down (torch takes a while): a
    # Ctrl-C then would end the process with no exit code of ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    problem = _flush()
    if problem is not None:
        code = code or 2
        _say(f"tracekit: error: could not write the output: {problem}")
    sys.exit(code)


def _flush() -> str | None:
    """Flush stdout and stderr; what went wrong, if writing failed (a full disk), else None. A
    reader that went away (| head) or a closed stream is not a failure. A stream that cannot be
    written is pointed at os.devnull, so the interpreter's own flush at exit has nothing to fail."""
    problem = None
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except ValueError:  # the stream was closed
            pass
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError):
                problem = problem or (exc.strerror or str(exc))
            _discard(stream)
    return problem


def _discard(stream: TextIO) -> None:
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
