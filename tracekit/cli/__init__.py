"""The ``tracekit`` command line: a thin layer over the library, one module per command.

Errors a user can fix (bad flags, unreadable traces) print one line and exit 2; a failed
``--check`` exits 1; Ctrl-C exits 130. No traceback reaches the user for any of them.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.2x vendors click; older releases use the click package
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as cx  # type: ignore[no-redef]

from tracekit.cli import analyze as _analyze
from tracekit.cli import capture as _capture
from tracekit.cli import diff as _diff
from tracekit.cli import perfetto as _perfetto
from tracekit.cli import report as _report
from tracekit.errors import TracekitError

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
app.command("capture")(_capture.capture)
app.command("analyze")(_analyze.analyze)
app.command("report")(_report.report)
app.command("diff")(_diff.diff)
app.command("export")(_perfetto.export)
app.command("open")(_perfetto.open_cmd)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (``sys.exit(main())``)."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="tracekit")
    except TracekitError as exc:
        print(f"tracekit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except cx.NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            print(exc.ctx.get_help())
        return 0
    except cx.UsageError as exc:
        msg = exc.format_message().replace("\n", " ")
        cmd = f" {exc.ctx.info_name}" if exc.ctx and exc.ctx.info_name and exc.ctx.info_name != "tracekit" else ""
        print(f"tracekit: error: {msg} (see 'tracekit{cmd} --help')", file=sys.stderr)
        return 2
    except typer.Abort:
        print("tracekit: interrupted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("tracekit: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except cx.ClickException as exc:
        print(f"tracekit: error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    return int(rv) if isinstance(rv, int) else 0


def entry() -> None:
    sys.exit(main())
