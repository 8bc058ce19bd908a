"""The command leaves the usual way (``sys.exit``): exit handlers and finalizers run, everything
printed reaches the reader whole, and output that cannot be written is an error, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CPU_ONLY, ROOT, V100_DDP, fixture_param, fixture_path

# An exit handler writes ``marker``; an object's finalizer, run by the interpreter's teardown,
# writes ``marker.teardown``: both files show the process left the usual way.
_SCRIPT = """
import atexit, pathlib, sys
marker = pathlib.Path(sys.argv[1])
atexit.register(lambda: marker.write_text("handler ran"))
class Teardown:
    def __del__(self):
        pathlib.Path(str(marker) + ".teardown").write_text("teardown ran")
kept = Teardown()
sys.argv = ["tracekit", *sys.argv[2:]]
from tracekit.__main__ import main
main()
"""
# Block-buffered output, as most users' environments have it (this project's sets
# PYTHONUNBUFFERED, which would hide a missing flush).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _run(marker: Path, *args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(marker), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=ENV,
    )


@pytest.mark.parametrize("name", [CPU_ONLY, fixture_param(V100_DDP)])
def test_output_is_whole_and_the_process_leaves_the_usual_way(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    done = _run(marker, "analyze", str(fixture_path(name)), "--format", "json")
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)  # the whole document, flushed before the process left
    assert marker.read_text() == "handler ran"
    assert Path(f"{marker}.teardown").read_text() == "teardown ran"
    assert done.stderr == ""


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_error_exit_code_kept_and_exit_handlers_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    done = _run(marker, "analyze", str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert done.stderr.startswith("tracekit: error:") and done.stderr.count("\n") == 1, done.stderr
    assert marker.read_text() == "handler ran"


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_usage_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    """Click's own errors (an unknown option value, a missing argument, an unknown command) come
    out in tracekit's one-line form, pointing at the right --help."""
    cases = {
        ("analyze", "--by", "nonsense", str(fixture_path(CPU_ONLY))): "",
        ("analyze",): "(see 'tracekit analyze --help')",
        ("nosuch",): "(see 'tracekit --help')",
    }
    for args, hint in cases.items():
        done = _run(tmp_path / "m", *args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("tracekit: error:"), (args, done.stderr)
        assert lines[0].endswith(hint), (args, done.stderr)


def test_no_command_shows_the_help(tmp_path: Path) -> None:
    done = _run(tmp_path / "m")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: tracekit") and "analyze" in done.stdout


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_a_profiler_still_writes_its_results(tmp_path: Path) -> None:
    """Under cProfile the command returns to the profiler, which writes what it measured."""
    out = tmp_path / "analyze.prof"
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "tracekit", "analyze", str(fixture_path(CPU_ONLY))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_disk_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    """Output that cannot be written (here to /dev/full, a disk that is always full) gives exit 2
    and one line saying so, not exit 0 with nothing written, nor the interpreter's own complaint."""
    with open("/dev/full", "w") as full:
        done = _run(tmp_path / "m", "analyze", str(fixture_path(CPU_ONLY)), "--format", "csv", stdout=full)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tracekit: error:") and "No space left on device" in lines[0], done.stderr


def test_a_closed_stdout_is_no_traceback(tmp_path: Path) -> None:
    """With standard output closed (``>&-``) the command neither crashes on leaving nor prints a
    traceback."""
    cmd = f"{sys.executable} -m tracekit analyze {fixture_path(CPU_ONLY)} --format csv >&-"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=300, env=ENV)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.returncode in (0, 2), done.stderr


@pytest.mark.slow  # V100_DDP is only in ../shared
def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path) -> None:
    """``| head -1`` closes the pipe after one line: the command leaves quietly with its own code."""
    cmd = (
        f"{sys.executable} -m tracekit analyze {fixture_path(V100_DDP)} --by kernel --format csv | head -1; "
        "echo ${PIPESTATUS[0]} >&2"
    )
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=300, env=ENV)
    assert done.stdout.count("\n") == 1
    assert done.stderr.strip() == "0", done.stderr


@pytest.mark.slow  # V100_DDP is only in ../shared
def test_the_console_script_and_python_m_give_the_same_output() -> None:
    """The entry point pyproject.toml names (``tracekit.__main__:main``) is what the installed
    ``tracekit`` script calls; ``python -m tracekit`` runs the same function. Both print the same
    and keep the exit code."""
    script = Path(sys.executable).with_name("tracekit")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (tracekit is not installed in this environment)")
    assert "from tracekit.__main__ import main" in script.read_text()
    trace = str(fixture_path(V100_DDP))
    runs = [
        subprocess.run(
            [*cmd, "analyze", trace, "--by", "kernel"], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        for cmd in ([str(script)], [sys.executable, "-m", "tracekit"])
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.count("\n") > 50
    bad = subprocess.run(
        [str(script), "analyze", "--by", "nonsense", trace], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2 and bad.stderr.startswith("tracekit: error:")
