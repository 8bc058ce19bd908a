"""Pytest fixtures: real captures, session-scoped so each sweep runs once. Plain helpers are in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import capture, generate_traces

os.environ.setdefault("KINETO_LOG_LEVEL", "5")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick real capture: builtin tiny model, two contexts, a few tokens."""
    return capture(tmp_path_factory.mktemp("small"), [32, 160], 6, profile_steps=3, chunk=64)


@pytest.fixture
def run(small_run: Path, tmp_path: Path) -> Path:
    """A copy of a real capture, free to damage."""
    return Path(shutil.copytree(small_run, tmp_path / "run"))


# Three rounds and one timed prefill per context: the fits need the decode steps, and the
# 4096-token prefill is the sweep's largest cost (the default sweep runs in test_busy_core).
@pytest.fixture(scope="session")
def sweep_math(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture(
        tmp_path_factory.mktemp("math"), [128, 1024, 2048, 4096], 32, attn="math", name="math", rounds=3,
        prefill_repeats=1,
    )  # fmt: skip


@pytest.fixture(scope="session")
def sweep_sdpa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture(
        tmp_path_factory.mktemp("sdpa"), [128, 1024, 2048, 4096], 32, attn="sdpa", name="sdpa", rounds=3,
        prefill_repeats=1,
    )  # fmt: skip


@pytest.fixture(scope="session")
def hf_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HF ``generate()`` traces recorded once for the session (tests.helpers.generate_traces):
    test_steps, test_steps_report and test_advise read the same files."""
    return generate_traces(tmp_path_factory.mktemp("generate"))


# What is slow: a real capture (whatever file asks for one: the session fixtures run once, but each
# costs seconds of torch and Kineto), Dask, headless chromium, a trace only ../shared has, and any
# test of about a second or more (`make unit` prints its slowest ten). Tests that ask for one of these
# fixtures are marked here; the others carry @pytest.mark.slow with the reason beside it.
CAPTURES = frozenset({"small_run", "run", "sweep_math", "sweep_sdpa", "hf_run", "hf_traces"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CAPTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
