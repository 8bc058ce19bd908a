"""Bad input, faults and attack (README, "Under bad input, faults and attack"): trace files. Every
loader path must say the same thing about the same file, bombs stop at the budget, odd numbers are
dropped and counted, and nothing from a trace reaches a terminal raw. Inputs come from
``tests/hostile.py``; the rest of the promise is kept by ``test_hostile_runs.py`` (run folders,
outputs, errors, capture) and ``test_hostile_server.py`` (the loopback server)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ROOT
from tests.hostile import (
    BAD,
    HOSTILE_NAME,
    ODD,
    bomb,
    doc,
    events,
    one_line_error,
    tk,
    write,
)
from tracekit.errors import TraceFormatError
from tracekit.sanitize import finite, printable
from tracekit.trace.read import ReadOptions, load_trace
from tracekit.units import parse_size

# Every way a file is read: whole; in chunks in this process; in chunks decoded by worker
# processes. In 4 kB pieces, to cut many times.
_SMALL = {"chunk_bytes": 4096, "piece_bytes": 4096, "parallel_from": 0}
LOADERS = {
    "whole": ReadOptions(loader="whole", workers=1, **_SMALL),
    "chunked": ReadOptions(loader="chunked", workers=1, **_SMALL),
    "parallel": ReadOptions(loader="chunked", workers=2, **_SMALL),
}


def _load_all(path: Path, **kw: bool) -> dict[str, str]:
    """Load ``path`` on every loader path; each path's outcome as one comparable line."""
    seen = {}
    for name, options in LOADERS.items():
        try:
            t = load_trace(path, options=options, **kw)
            seen[name] = f"ok host={len(t.host)} device={len(t.device)} skipped={t.skipped_events} "
            seen[name] += f"out_of_range={t.out_of_range} partial={t.partial}"
        except TraceFormatError as exc:
            seen[name] = exc.problem
    return seen


# -- input policy: every path says the same thing about the same file ----------------------------


@pytest.mark.parametrize("name", list(BAD))
def test_bad_trace_is_one_clear_error_in_the_same_words_on_every_path(name: str, tmp_path: Path) -> None:
    data, expected = BAD[name]
    seen = _load_all(write(tmp_path / "bad.json", data))
    assert len(set(seen.values())) == 1, seen
    assert expected in seen["whole"], seen


@pytest.mark.parametrize("name", list(ODD))
def test_odd_events_are_dropped_and_counted_the_same_on_every_path(name: str, tmp_path: Path) -> None:
    raw, expected = ODD[name]
    data = doc(events(), raw=raw, at=100)
    seen = _load_all(write(tmp_path / "odd.json", b"\xef\xbb\xbf" + data if "mark" in name else data))
    assert len(set(seen.values())) == 1, seen
    assert seen["whole"].startswith("ok host=180 device=60") and expected in seen["whole"], seen


def test_dropped_events_are_a_warning_and_leave_the_window_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evs = events()
    stray = {**evs[5]}
    del stray["ts"]
    f = write(tmp_path / "t.json", doc([*evs, stray, {**evs[9], "ts": 1e30}]))
    code, out, err = tk(capsys, "analyze", f, "--format", "json")
    assert code == 0 and "skipped 2 events whose times are missing, not finite, negative or far outside" in err
    window = json.loads(out)["traces"][0]["window"]
    assert window["dur_us"] < 10_000  # 60 steps of 100 µs, not 59 days


def test_past_the_chunked_threshold_a_file_is_named_as_when_read_whole(tmp_path: Path) -> None:
    """Size picks the path (32 MB by default; 64 kB here, so the files stay small): damage,
    malformed events and numbers out of range read the same either way."""
    evs = [json.dumps(e).encode() for e in events(600)]
    odd = [b'{"ph":"X","cat":"cpu_op","name":"x","ts":"oops"}', b'{"ph":"X","cat":"cpu_op","dur":1e400,"ts":5.1e12}']
    cases = {
        "ok": evs[:1200] + odd + evs[1200:],
        "invalid character": evs[:1200] + [b'{"ph":"X","cat":"cpu_op","ts":NaN}'] + evs[1200:],
        "Invalid UTF-8": evs[:1200] + [b'{"ph":"X","cat":"cpu_op","name":"\xff"}'] + evs[1200:],
    }
    for expected, parts in cases.items():
        for tail in (b"]}", b"]} garbage"):
            f = write(tmp_path / "big.json", b'{"traceEvents": [' + b",\n".join(parts) + tail)
            assert f.stat().st_size > 64 << 10
            seen = {}
            for loader in ("auto", "whole"):
                options = ReadOptions(loader=loader, chunked_from=64 << 10, chunk_bytes=16 << 10)  # type: ignore[arg-type]
                try:
                    t = load_trace(f, options=options)
                    seen[loader] = f"ok skipped={t.skipped_events} out_of_range={t.out_of_range} host={len(t.host)}"
                except TraceFormatError as exc:
                    seen[loader] = exc.problem
            want = "trailing characters" if b"garbage" in tail and expected == "ok" else expected
            assert seen["auto"] == seen["whole"] and want in seen["auto"], seen
            if want == "ok":
                assert "skipped=1 out_of_range=1" in seen["auto"]


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_partial_salvages_the_same_events_on_every_path(tmp_path: Path) -> None:
    for name in ("truncated", "NaN literal", "trailing garbage", "invalid UTF-8"):
        seen = _load_all(write(tmp_path / "bad.json", BAD[name][0]), partial=True)
        assert len(set(seen.values())) == 1 and "partial=True" in seen["whole"], (name, seen)


@pytest.mark.slow  # 60 damaged traces through every reader
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 12_000), junk=st.binary(min_size=0, max_size=6), at=st.integers(0, 12_000))
def test_fuzz_damage_anywhere_gives_one_outcome_on_every_path(cut: int, junk: bytes, at: int, tmp_path: Path) -> None:
    good = doc(events(40))
    data = good[:at] + junk + good[at:]
    data = data[: len(data) - cut % len(data)] if cut % 3 == 0 else data
    seen = _load_all(write(tmp_path / "fuzz.json", data))
    assert len(set(seen.values())) == 1, seen


# -- input policy: special files, links, budget -------------------------------------------------


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize("kind", ["fifo", "char device", "random device", "symlink loop", "directory", "missing"])
def test_what_is_not_a_regular_file_is_refused_at_once(kind: str, tmp_path: Path) -> None:
    p = tmp_path / "trace.json"
    expected = {"fifo": "is a FIFO", "symlink loop": "symbolic link loop", "char device": "is a device"}
    expected["random device"] = "is a device"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind.endswith("device"):
        p = Path("/dev/zero" if kind == "char device" else "/dev/urandom")
    elif kind == "symlink loop":
        os.symlink(tmp_path / "other", p)
        os.symlink(p, tmp_path / "other")
    elif kind == "directory":
        p.mkdir()
    # A subprocess: a FIFO opened for reading would block this one for ever.
    r = subprocess.run(
        [sys.executable, "-m", "tracekit", "analyze", str(p)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    expected["directory"] = "no *.json or *.json.gz trace in this directory"  # a folder is searched for traces
    assert expected.get(kind, "no such file") in r.stderr


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize(
    ("prefix", "filler", "problem"),
    [
        (b'{"traceEvents": [', b" ", "inflates past the 16.0 MB inflate budget (TRACEKIT_MAX_INFLATE)"),
        (b'{"traceEvents": [{"name": "', b"a", "inflates past the 16.0 MB inflate budget"),
        (b"[", b"[{}, ", "inflates past the 16.0 MB inflate budget"),
        (b"", b"\0", "is not JSON"),
    ],
    ids=["whitespace flood", "one endless string", "endless events", "zeros"],
)
@pytest.mark.parametrize("loader", ["auto", "whole", "chunked"])
def test_gzip_bomb_stops_at_the_budget(prefix: bytes, filler: bytes, problem: str, loader: str, tmp_path: Path) -> None:
    f = bomb(tmp_path / "bomb.json.gz", prefix, filler, members=16, member_mb=16)  # 256 MiB from ~0.5 MB
    options = ReadOptions(inflate_budget=parse_size("16M"), loader=loader)  # type: ignore[arg-type]
    with pytest.raises(TraceFormatError) as err:
        load_trace(f, options=options)
    assert problem in err.value.problem
    assert err.value.kind == ("budget" if "budget" in problem else "not-json")
    assert "TRACEKIT_MAX_INFLATE=" in err.value.advice or "JSON" in problem


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_budget_follows_the_memory_this_process_may_use(tmp_path: Path) -> None:
    """No budget given: a quarter of what the process may still allocate (here RLIMIT_AS)."""
    import resource

    f = bomb(tmp_path / "bomb.json.gz", b'{"traceEvents": [', b" ", members=24)  # 1.5 GiB of whitespace
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("TRACEKIT_MAX_INFLATE", None)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1200 << 20, resource.RLIM_INFINITY))

    r = subprocess.run(
        [sys.executable, "-m", "tracekit", "analyze", str(f)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        preexec_fn=limit,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "inflate budget (a quarter of the available memory)" in r.stderr and "MemoryError" not in r.stderr


def test_budget_given_wrong_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEKIT_MAX_INFLATE", "lots")
    one_line_error(tk(capsys, "analyze", write(tmp_path / "t.json", doc(events()))), "TRACEKIT_MAX_INFLATE", "8G")


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        ("TRACEKIT_CHUNKED_BYTES", "-5", "give a size from 0 bytes to 100.0 TB"),
        ("TRACEKIT_PARALLEL_BYTES", "1e999", "give a size from 0 bytes to 100.0 TB"),
        ("TRACEKIT_MAX_INFLATE", "10k", "give a size from 1.0 MB to 100.0 TB"),
        ("TRACEKIT_LOADER", "fast", "give one of auto, whole, chunked"),
        ("TRACEKIT_LOAD_WORKERS", "0", "give a whole number from 1 to 4096"),
    ],
)
def test_a_loader_setting_out_of_range_is_one_line_naming_it(
    name: str,
    value: str,
    accepts: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(name, value)
    one_line_error(tk(capsys, "analyze", write(tmp_path / "t.json", doc(events()))), f"{name}=", accepts)


def test_read_options_from_the_environment() -> None:
    env = {"TRACEKIT_LOADER": "chunked", "TRACEKIT_MAX_INFLATE": "8G", "TRACEKIT_LOAD_WORKERS": "3"}
    env["TRACEKIT_CHUNKED_BYTES"] = "2GiB"
    assert ReadOptions.from_env(env) == ReadOptions(
        loader="chunked", inflate_budget=8 * 10**9, workers=3, chunked_from=2 << 30
    )
    assert ReadOptions.from_env({}) == ReadOptions()


# -- escaping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_terminal_escapes_in_kernel_names_never_reach_the_terminal(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evs = events()
    for e in evs:
        if e["cat"] == "kernel":
            e["name"] = HOSTILE_NAME
    code, out, err = tk(capsys, "analyze", write(tmp_path / "t\x1b[31m.json", doc(evs)), "--by", "kernel", "-f", fmt)
    assert code == 0, err
    for control in ("\x1b", "\x07", "\u202e"):
        assert control not in out and control not in err
    if fmt == "json":  # JSON escapes them itself, and keeps the exact text
        assert json.loads(out)["traces"][0]["path"].endswith("t\x1b[31m.json")
    else:
        assert "\\x1b]0;owned\\x07" in out


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@given(st.text())
def test_printable_leaves_no_control_character(text: str) -> None:
    shown = printable(text)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E for c in shown)
    assert printable("plain text: ms/token (R² 0.99)") == "plain text: ms/token (R² 0.99)"


def test_json_never_holds_nan_or_infinity() -> None:
    assert finite({"a": [float("nan"), 1.5, {"b": float("-inf")}]}) == {"a": [None, 1.5, {"b": None}]}


# -- export reads as analyze does ------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["truncated", "NaN literal", "invalid UTF-8", "args nested 5000 deep", "42", "no ph anywhere"]
)
def test_export_names_a_bad_trace_as_analyze_does(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(tmp_path / "bad.json", BAD[case][0])
    analyzed = one_line_error(tk(capsys, "analyze", f))
    assert one_line_error(tk(capsys, "export", f, "--out", tmp_path / "out.json")) == analyzed
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    "case",
    ["dur 1 and 400 zeros", "dur 1e400", "negative dur", "missing ts", "invalid UTF-8 in a field tracekit skips"],
)
def test_export_keeps_odd_events_and_writes_strict_json(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(tmp_path / "odd.json", doc(events(), raw=ODD[case][0], at=100))
    code, _, err = tk(capsys, "export", f, "--out", tmp_path / "out.json")
    assert code == 0, err
    kept = json.loads((tmp_path / "out.json").read_text(), parse_constant=lambda c: pytest.fail(c))["traceEvents"]
    assert len([e for e in kept if e.get("pid") != 2_000_000_000]) == 241  # every original event, none lost


def test_exporting_an_enriched_trace_adds_tracekit_events_once(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enriched = next(run.glob("*.enriched.json.gz"))
    counts = []
    src = enriched
    for i in range(2):
        out = tmp_path / f"again{i}.json"
        assert tk(capsys, "export", src, "--out", out)[0] == 0
        evs = json.loads(out.read_text())["traceEvents"]
        counts.append((len(evs), sum(1 for e in evs if e.get("pid") == 2_000_000_000)))
        src = out
    original = json.loads(gzip.decompress(enriched.read_bytes()))["traceEvents"]
    assert counts[0] == counts[1] == (len(original), sum(1 for e in original if e.get("pid") == 2_000_000_000))


def test_markdown_report_escapes_markup_links_and_controls_from_trace_names(run: Path) -> None:
    from tracekit.analysis.timer_gaps import HostDeviceGap
    from tracekit.report.data import build_report
    from tracekit.report.findings import findings_for
    from tracekit.report.model import ReportData
    from tracekit.report.renderers import render

    d = build_report(run).facts
    d.gaps.append(HostDeviceGap(HOSTILE_NAME, host_start_us=0.0, host_dur_us=10.0, device_end_us=50.0, launched=1))
    md = render(ReportData(d, findings_for(d)), "md").text
    assert "<script>" not in md and "&lt;script&gt;" in md and "![x]\\(http" in md and "![x](http" not in md
    assert "\x1b" not in md and "\u202e" not in md and "\\\\x1b]0;owned" in md  # shown as \x1b]0;owned
