"""The command leaves with ``os._exit`` (no interpreter teardown) once it is done: exit handlers
that libraries registered still run, and everything printed reaches the reader, whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CPU_ONLY, ROOT, V100_DDP, fixture_param, fixture_path

# An exit handler writes ``marker``; an object's finalizer, run only by the interpreter's own
# teardown, writes ``marker.teardown``: its absence shows the early exit was taken.
_SCRIPT = """
import atexit, pathlib, sys
marker = pathlib.Path(sys.argv[1])
atexit.register(lambda: marker.write_text("handler ran"))
class Teardown:
    def __del__(self):
        pathlib.Path(str(marker) + ".teardown").write_text("teardown ran")
kept = Teardown()
sys.argv = ["tracekit", *sys.argv[2:]]
from tracekit.cli import entry
entry()
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
def test_output_is_whole_and_exit_handlers_run(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    done = _run(marker, "analyze", str(fixture_path(name)), "--format", "json")
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)  # the whole document, flushed before the process left
    assert marker.read_text() == "handler ran"
    assert not Path(f"{marker}.teardown").exists(), "the early exit was not taken"


@pytest.mark.slow  # V100_DDP is only in ../shared
def test_output_equals_a_normal_exit(tmp_path: Path) -> None:
    """The kernel table (many lines) as printed before ``os._exit`` and as printed by a process
    that returns from ``main`` and leaves the usual way."""
    args = ["analyze", str(fixture_path(V100_DDP)), "--by", "kernel"]
    fast = _run(tmp_path / "marker", *args)
    normal = subprocess.run(
        [sys.executable, "-c", "import sys; from tracekit.cli import main; sys.exit(main(sys.argv[1:]))", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert (fast.returncode, normal.returncode) == (0, 0), fast.stderr + normal.stderr
    assert fast.stdout.count("\n") > 100
    assert fast.stdout == normal.stdout


def test_error_exit_code_kept_and_exit_handlers_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    done = _run(marker, "analyze", str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert "tracekit: error:" in done.stderr
    assert marker.read_text() == "handler ran"


def test_a_profiler_still_writes_its_results(tmp_path: Path) -> None:
    """Under cProfile (or a coverage tracer) the process leaves the usual way, so the tool gets to
    write what it measured after the command returns."""
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
    and one line saying so, not exit 0 with nothing written."""
    with open("/dev/full", "w") as full:
        done = _run(tmp_path / "m", "analyze", str(fixture_path(CPU_ONLY)), "--format", "csv", stdout=full)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("tracekit: error:") and "No space left on device" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr


def test_a_closed_stdout_is_no_traceback(tmp_path: Path) -> None:
    """With standard output closed (``>&-``) the command neither crashes on leaving nor prints a
    traceback."""
    cmd = f"{sys.executable} -m tracekit analyze {fixture_path(CPU_ONLY)} --format csv >&-"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=300, env=ENV)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 2), done.stderr


@pytest.mark.slow  # V100_DDP is only in ../shared
def test_the_console_script_and_python_m_give_the_same_output() -> None:
    """The entry point pyproject.toml names (``tracekit.__main__:main``, which runs the command in
    one large frame) is what the installed ``tracekit`` script calls; ``python -m tracekit`` runs
    the same function. Both print what ``main`` returns to a plain caller, and keep its exit code."""
    script = Path(sys.executable).with_name("tracekit")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (tracekit is not installed in this environment)")
    # The script calls the large-frame entry point, which really has the large frame.
    from tracekit.__main__ import STACK_SLOTS, _run

    assert "from tracekit.__main__ import main" in script.read_text()
    assert _run.__code__.co_stacksize > STACK_SLOTS
    trace = str(fixture_path(V100_DDP))
    runs = [
        subprocess.run(
            [*cmd, "analyze", trace, "--by", "kernel"], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        for cmd in ([str(script)], [sys.executable, "-m", "tracekit"])
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.count("\n") > 100
    bad = subprocess.run(
        [str(script), "analyze", "--by", "nonsense", trace], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2 and bad.stderr.startswith("tracekit: error:")
