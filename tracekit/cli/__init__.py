"""The ``tracekit`` command line: a thin layer over the library, one module per command.

The error policy lives here: every failure prints one line (``tracekit: error: ...``, control
characters escaped) and exits 2, whether tracekit raised it (bad flags, unreadable traces), the
operating system did (disk full, permission, a vanished file) or the interpreter did (out of
memory); a failed ``--check`` exits 1; Ctrl-C exits 130, and a second Ctrl-C while tracekit saves
what is finished is acknowledged, not obeyed (a third quits at once). No traceback reaches the
user, unless ``TRACEKIT_DEBUG=1`` asks for one.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import typer

try:  # typer >= 0.2x vendors click; older releases use the click package
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as cx  # type: ignore[no-redef]

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
)


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


app.command("capture")(_command(_capture.capture))
app.command("analyze")(_command(_analyze.analyze))
app.command("report")(_command(_report.report))
app.command("diff")(_command(_diff.diff))
app.command("advise")(_command(_advise.advise))
app.command("export")(_command(_perfetto.export))
app.command("open")(_command(_perfetto.open_cmd))
app.command("devices")(_command(_devices.devices_cmd))


def _say(line: str) -> None:
    print(printable(" ".join(line.split("\n"))), file=sys.stderr)


def _os_error(exc: OSError) -> str:
    from tracekit.fsutil import os_problem

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
    try:
        with _interrupts():
            return _run(argv, debug)
    except KeyboardInterrupt:  # pressed between the command's end and the handler's removal
        _say("tracekit: interrupted")
        return 130


def _run(argv: list[str] | None, debug: bool) -> int:
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="tracekit")
    except TracekitError as exc:
        if debug:
            raise
        _say(f"tracekit: error: {exc}")
        return exc.exit_code
    except cx.NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            print(exc.ctx.get_help())
        return 0
    except cx.UsageError as exc:
        msg = exc.format_message().replace("\n", " ")
        cmd = f" {exc.ctx.info_name}" if exc.ctx and exc.ctx.info_name and exc.ctx.info_name != "tracekit" else ""
        _say(f"tracekit: error: {msg} (see 'tracekit{cmd} --help')")
        return 2
    except (typer.Abort, KeyboardInterrupt):
        _say("tracekit: interrupted")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except cx.ClickException as exc:
        _say(f"tracekit: error: {exc.format_message()}")
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
    code = main()
    # The interpreter resets Python's own handlers while it shuts down (torch takes a while):
    # a Ctrl-C then would kill the process with no exit code of ours. Ignored ones stay ignored,
    # and after an interrupt, with everything saved and said, the process leaves at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == 130:
        _flush()
        os._exit(130)
    if threading.active_count() == 1 and not _observed():
        # Everything is written and said: leave without the interpreter's teardown (freeing every
        # object and module one by one, ~25-30 ms of a small analyze), after the exit handlers that
        # libraries registered (Dask's, temporary files') have run.
        atexit._run_exitfuncs()
        problem = _flush()
        if problem is not None:
            code = code or 2
            _say_raw(f"tracekit: error: could not write the output: {problem}")
        os._exit(code)
    sys.exit(code)


def _observed() -> bool:
    """Whether a profiler, tracer or coverage tool watches this process: they write what they
    measured after the command returns, so the process must leave the usual way."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+: cProfile and coverage hook in here
    return monitoring is not None and any(monitoring.get_tool(i) is not None for i in range(6))


def _flush() -> str | None:
    """Flush stdout and stderr; what went wrong, if writing failed (a full disk), else None. A
    reader that went away (| head) or a closed stream is not a failure."""
    problem = None
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            pass
        except OSError as exc:
            problem = problem or (exc.strerror or str(exc))
    return problem


def _say_raw(line: str) -> None:
    """One line on file descriptor 2, whatever became of ``sys.stderr``."""
    try:
        os.write(2, (printable(line) + "\n").encode(errors="replace"))
    except OSError:
        pass
