"""The command leaves with ``os._exit`` (no interpreter teardown) once it is done: exit handlers
that libraries registered still run, and everything printed reaches the reader, whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CPU_ONLY, V100_DDP, fixture_path

ROOT = Path(__file__).resolve().parent.parent

_SCRIPT = """
import atexit, pathlib, sys
marker = pathlib.Path(sys.argv[1])
atexit.register(lambda: marker.write_text("handler ran"))
sys.argv = ["tracekit", *sys.argv[2:]]
from tracekit.cli import entry
entry()
"""


def _run(marker: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(marker), *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


@pytest.mark.parametrize("name", [CPU_ONLY, V100_DDP])
def test_output_is_whole_and_exit_handlers_run(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    done = _run(marker, "analyze", str(fixture_path(name)), "--format", "json")
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout)  # the whole document, flushed before the process left
    assert marker.read_text() == "handler ran"


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
