"""Every command's --help shows its examples one per line (Click rewraps a paragraph unless a
line holding only ``\\b`` comes before it)."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from tests.helpers import ROOT, run_cli
from tracekit.cli import app

COMMANDS = {c.name: c.callback for c in app.registered_commands}


def _examples(doc: str) -> list[str]:
    lines = inspect.cleandoc(doc).splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() in ("Examples:", "Example:")), None)
    assert start is not None, "no Examples: block"
    out = []
    for ln in lines[start + 1 :]:
        if not ln.strip():
            break
        out.append(ln.strip())
    return out


def test_every_command_is_covered() -> None:
    assert set(COMMANDS) == {"capture", "analyze", "report", "diff", "advise", "export", "open", "devices"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_examples_render_one_per_line(name: str) -> None:
    callback = COMMANDS[name]
    assert callback is not None and callback.__doc__
    examples = _examples(callback.__doc__)
    assert examples and all(e.startswith("tracekit ") for e in examples)
    r = run_cli(name, "--help", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    shown = [ln.strip() for ln in r.stdout.splitlines()]
    for e in examples:
        assert e in shown, f"{name} --help rewrapped {e!r}:\n{r.stdout}"
    assert "\b" not in r.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_points_to_a_docs_page_that_exists(name: str) -> None:
    r = run_cli(name, "--help", env={"COLUMNS": "120"})
    assert r.returncode == 0, r.stderr
    pages = re.findall(r"docs/[a-z]+\.md", r.stdout)
    assert pages and pages[0] != "docs/README.md", r.stdout
    for page in pages:
        assert (ROOT / page).is_file(), page


def test_limit_flags_say_what_they_mean_in_each_command() -> None:
    """The limit flags share one parser but not one meaning: advise's --device is the device its
    traces were recorded on (--on is the one to compare with); analyze's apply with --by step/kernel."""
    import typer.main

    group: Any = typer.main.get_command(app)  # typer's documented way to the command objects

    def flag_help(command: str, flag: str) -> str:
        return str(next(p for p in group.commands[command].params if flag in p.opts).help)

    assert "recorded on" in flag_help("advise", "--device")
    assert "compare with" in flag_help("report", "--device")
    for flag in ("--device", "--peak-bandwidth", "--peak-flops", "--model-config"):
        assert flag_help("analyze", flag).startswith("With --by step/kernel")
