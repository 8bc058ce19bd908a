"""Bad input, faults and attack: what tracekit promises (README, "Under bad input, faults and
attack"), one case per way of breaking it. Inputs are built here (``tests/hostile.py``); faults
are real (a full tmpfs, a read-only mount, /dev/full, signals, sockets on 127.0.0.1)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracekit.trace.load as load_mod
from tests.conftest import ROOT
from tests.hostile import (
    as_nobody,
    bomb,
    doc,
    events,
    leftovers,
    one_line_error,
    remount_read_only,
    small_disk,
    tk,
    write,
)
from tracekit.errors import TraceFormatError
from tracekit.perfetto.serve import MAX_CLIENTS, TraceServer
from tracekit.sanitize import finite, printable
from tracekit.trace.load import load_trace

LOADERS = ("whole", "chunked")


def _load_all(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: bool) -> dict[str, str]:
    """Load ``path`` on every loader path (the chunked one in 4 kB pieces, to cut many times);
    each path's outcome as one comparable line."""
    monkeypatch.setattr(load_mod, "CHUNK_SIZE", 4096)
    seen = {}
    for loader in LOADERS:
        monkeypatch.setenv("TRACEKIT_LOADER", loader)
        try:
            t = load_trace(path, **kw)
            seen[loader] = f"ok host={len(t.host)} device={len(t.device)} skipped={t.skipped_events} "
            seen[loader] += f"out_of_range={t.out_of_range} partial={t.partial}"
        except TraceFormatError as exc:
            seen[loader] = exc.problem
    return seen


# -- input policy: every path says the same thing about the same file ----------------------------

_BAD = {
    "truncated": (doc(events())[:-700], "invalid or truncated JSON (Input data was truncated)"),
    "NaN literal": (doc(events(), raw=[b'{"ph":"X","ts":NaN}'], at=120), "invalid character (byte 1"),
    "trailing garbage": (doc(events(), tail=b" }garbage"), "trailing characters (byte"),
    "invalid UTF-8": (doc(events(), raw=[b'{"ph":"X","name":"\xff\xfe"}'], at=200), "Invalid UTF-8"),
    "42": (b"42", "a single value, not a Chrome trace"),
    "null": (b"null\n", "a single value, not a Chrome trace"),
    "string": (b'"traceEvents"', "a single value, not a Chrome trace"),
    "UTF-16": ('{"traceEvents": []}'.encode("utf-16"), "is UTF-16 text"),
    "binary": (bytes(range(256)) * 8, "is not JSON"),
    "no traceEvents": (b'{"traceEvent": []}', "no traceEvents array"),
    "traceEvents an object": (b'{"traceEvents": {"ph": "X"}}', "traceEvents is not a list of events"),
    "no ph anywhere": (doc([{k: v for k, v in e.items() if k != "ph"} for e in events()]), "240 malformed events"),
    "empty": (b"", "is empty"),
    "whitespace": (b" \n\t" * 5000, "is empty"),
    "args nested 5000 deep": (doc(events(), raw=[b'{"ph":"X","args":' + b"[" * 5000 + b"]" * 5000 + b"}"]), "nested"),
    "objects nested 5000 deep": (
        doc(events(), raw=[b'{"ph":"X","a":' + b'{"a":' * 5000 + b"1" + b"}" * 5001]),
        "nested",
    ),
    "array nested 5000 deep": (b"[" * 5000 + b"]" * 5000, "nested more than about 1000 levels"),
}


@pytest.mark.parametrize("name", list(_BAD))
def test_bad_trace_is_one_clear_error_in_the_same_words_on_every_path(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, expected = _BAD[name]
    seen = _load_all(write(tmp_path / "bad.json", data), monkeypatch)
    assert len(set(seen.values())) == 1, seen
    assert expected in seen["whole"], seen


_ODD = {
    # (events inserted among 240 good ones, expected outcome)
    "missing ph": ([b'{"cat":"cpu_op","name":"x","ts":5.1e12,"dur":1}'], "skipped=1 out_of_range=0"),
    "missing ts": ([b'{"ph":"X","cat":"cpu_op","name":"x","pid":1,"tid":1,"dur":1}'], "skipped=0 out_of_range=1"),
    "ts 1e30": ([b'{"ph":"X","cat":"cpu_op","name":"x","pid":1,"tid":1,"ts":1e30,"dur":1}'], "out_of_range=1"),
    "negative dur": ([b'{"ph":"X","cat":"kernel","name":"k","pid":0,"tid":7,"ts":5.1e12,"dur":-5}'], "out_of_range=1"),
    "dur 1e400": ([b'{"ph":"X","cat":"cpu_op","name":"x","pid":1,"tid":1,"ts":5.1e12,"dur":1e400}'], "out_of_range=1"),
    "dur 1 and 400 zeros": (
        [b'{"ph":"X","cat":"cpu_op","name":"x","ts":5.1e12,"dur":1' + b"0" * 400 + b"}"],
        "skipped=1",
    ),
    "ts -inf string": (
        [b'{"ph":"X","cat":"cpu_op","name":"x","pid":1,"tid":1,"ts":"-1e999","dur":1}'],
        "out_of_range=1",
    ),
    "UTF-8 byte-order mark": ([], "skipped=0 out_of_range=0"),
}


@pytest.mark.parametrize("name", list(_ODD))
def test_odd_events_are_dropped_and_counted_the_same_on_every_path(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, expected = _ODD[name]
    data = doc(events(), raw=raw, at=100)
    seen = _load_all(write(tmp_path / "odd.json", b"\xef\xbb\xbf" + data if "mark" in name else data), monkeypatch)
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


def test_past_the_chunked_threshold_a_file_is_named_as_when_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Size picks the path (32 MB by default; 64 kB here, so the files stay small): damage,
    malformed events and numbers out of range read the same either way."""
    monkeypatch.setattr(load_mod, "CHUNKED_THRESHOLD", 64 << 10)
    monkeypatch.setattr(load_mod, "CHUNK_SIZE", 16 << 10)
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
                monkeypatch.setenv("TRACEKIT_LOADER", loader)
                try:
                    t = load_trace(f)
                    seen[loader] = f"ok skipped={t.skipped_events} out_of_range={t.out_of_range} host={len(t.host)}"
                except TraceFormatError as exc:
                    seen[loader] = exc.problem
            want = "trailing characters" if b"garbage" in tail and expected == "ok" else expected
            assert seen["auto"] == seen["whole"] and want in seen["auto"], seen
            if want == "ok":
                assert "skipped=1 out_of_range=1" in seen["auto"]


def test_partial_salvages_the_same_events_on_every_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("truncated", "NaN literal", "trailing garbage", "invalid UTF-8"):
        seen = _load_all(write(tmp_path / "bad.json", _BAD[name][0]), monkeypatch, partial=True)
        assert len(set(seen.values())) == 1 and "partial=True" in seen["whole"], (name, seen)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 12_000), junk=st.binary(min_size=0, max_size=6), at=st.integers(0, 12_000))
def test_fuzz_damage_anywhere_gives_one_outcome_on_every_path(
    cut: int, junk: bytes, at: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = doc(events(40))
    data = good[:at] + junk + good[at:]
    data = data[: len(data) - cut % len(data)] if cut % 3 == 0 else data
    seen = _load_all(write(tmp_path / "fuzz.json", data), monkeypatch)
    assert len(set(seen.values())) == 1, seen


# -- input policy: special files, links, budget -------------------------------------------------


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
    assert expected.get(kind, {"directory": "is a directory", "missing": "no such file"}.get(kind, "?")) in r.stderr


@pytest.mark.parametrize(
    ("prefix", "filler", "problem"),
    [
        (b'{"traceEvents": [', b" ", "inflates past the 16.8 MB inflate budget (TRACEKIT_MAX_INFLATE=16M)"),
        (b'{"traceEvents": [{"name": "', b"a", "inflates past the 16.8 MB inflate budget"),
        (b"[", b"[{}, ", "inflates past the 16.8 MB inflate budget"),
        (b"", b"\0", "is not JSON"),
    ],
    ids=["whitespace flood", "one endless string", "endless events", "zeros"],
)
@pytest.mark.parametrize("loader", ["auto", *LOADERS])
def test_gzip_bomb_stops_at_the_budget(
    prefix: bytes, filler: bytes, problem: str, loader: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = bomb(tmp_path / "bomb.json.gz", prefix, filler, members=16, member_mb=16)  # 256 MiB from ~0.5 MB
    monkeypatch.setenv("TRACEKIT_MAX_INFLATE", "16M")
    monkeypatch.setenv("TRACEKIT_LOADER", loader)
    with pytest.raises(TraceFormatError) as err:
        load_trace(f)
    assert problem in err.value.problem and ("TRACEKIT_MAX_INFLATE=" in err.value.problem or "JSON" in problem)


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


# -- escaping ------------------------------------------------------------------------------------

HOSTILE_NAME = "\x1b]0;owned\x07\x1b[2Jflash_attn_\u202ekernel<script>alert(1)</script>![x](http://evil.example/p.png)"


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


def test_markdown_report_escapes_markup_links_and_controls_from_trace_names(run: Path) -> None:
    from tracekit.analysis.gaps import HostDeviceGap
    from tracekit.report.data import build_report
    from tracekit.report.findings import findings_for
    from tracekit.report.model import ReportData
    from tracekit.report.renderers import render

    d = build_report(run)
    d.gaps.append(HostDeviceGap(HOSTILE_NAME, host_start_us=0.0, host_dur_us=10.0, device_end_us=50.0, launched=1))
    md = render(ReportData.of(d, findings_for(d)), "md", attachments=False).text
    assert "<script>" not in md and "&lt;script&gt;" in md and "!\\[x\\](http" in md and "![x](http" not in md
    assert "\x1b" not in md and "\u202e" not in md and "\\\\x1b\\]0;owned" in md  # shown as \x1b]0;owned


@given(st.text())
def test_printable_leaves_no_control_character(text: str) -> None:
    shown = printable(text)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E for c in shown)
    assert printable("plain text: ms/token (R² 0.99)") == "plain text: ms/token (R² 0.99)"


def test_json_never_holds_nan_or_infinity() -> None:
    assert finite({"a": [float("nan"), 1.5, {"b": float("-inf")}]}) == {"a": [None, 1.5, {"b": None}]}


# -- path policy and manifests ---------------------------------------------------------------------


@pytest.fixture
def run(small_run: Path, tmp_path: Path) -> Path:
    """A copy of a real capture, free to damage."""
    return Path(shutil.copytree(small_run, tmp_path / "run"))


def _edit_manifest(run: Path, edit: object) -> None:
    m = run / "manifest.json"
    d = json.loads(m.read_text())
    edit(d)  # type: ignore[operator]
    m.write_text(json.dumps(d))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("enriched_trace", "../secret.txt"),
        ("trace", "../secret.txt"),
        ("trace", "/etc/passwd"),
        ("trace", "sub/../../secret.txt"),
        ("trace", "link-out.json.gz"),
    ],
)
@pytest.mark.parametrize("command", ["report", "open", "export"])
def test_manifest_paths_never_leave_the_run(
    field: str, value: str, command: str, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run.parent / "secret.txt").write_text("secret")
    os.symlink(run.parent / "secret.txt", run / "link-out.json.gz")
    _edit_manifest(run, lambda d: d["contexts"][-1].__setitem__(field, value))
    args = {"report": ["--format", "json", "--out", "-"], "open": ["--no-browser", "--timeout", "1"]}
    args["export"] = ["--out", run.parent / "out.json"]
    line = one_line_error(tk(capsys, command, run, *args[command]), "outside the run folder")
    assert "secret" not in (run.parent / "out.json").read_text() if (run.parent / "out.json").exists() else line


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d["model"].__setitem__("layers", "four"), "Expected `int | null`, got `str` - at `$.model.layers`"),
        (lambda d: d["model"].__setitem__("layers", -4), "model.layers = -4"),
        (lambda d: d["contexts"][0]["timings"].__setitem__("prefill_s", -1.0), "timings.prefill_s"),
        (lambda d: d.__setitem__("model", None), "Expected `object`"),
        (lambda d: d.__setitem__("settings", json.loads("[" * 3000 + "]" * 3000)), "nested too deeply"),
    ],
    ids=["layers four", "negative layers", "negative time", "model null", "nested 3000 deep"],
)
@pytest.mark.parametrize("command", ["report", "diff"])
def test_broken_manifest_is_one_line(
    edit: object, problem: str, command: str, run: Path, small_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps(json.loads((run / "manifest.json").read_text()))
    if "nested" in problem:  # json.dumps itself refuses this depth: write it by hand
        text = text[:-1] + ', "deep": ' + "[" * 3000 + "]" * 3000 + "}"
        (run / "manifest.json").write_text(text)
    else:
        _edit_manifest(run, edit)
    args = ["report", run, "-f", "json", "--out", "-"] if command == "report" else ["diff", small_run, run]
    one_line_error(tk(capsys, *args), "manifest", problem)


def test_null_model_fields_are_fine(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit_manifest(run, lambda d: d["model"].update(layers=None, heads=None))
    code, out, err = tk(capsys, "report", run, "-f", "json", "--out", "-")
    assert code == 0 and json.loads(out)["model"].get("layers") is None, err


@pytest.mark.parametrize("what", ["fifo", "huge"])
def test_a_manifest_that_is_not_a_file_or_far_too_big(what: str, run: Path) -> None:
    m = run / "manifest.json"
    m.unlink()
    if what == "fifo":
        os.mkfifo(m)
    else:
        with open(m, "wb") as fh:
            fh.truncate(65 << 20)  # sparse: costs no disk
    r = subprocess.run(
        [sys.executable, "-m", "tracekit", "report", str(run)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert ("is a FIFO" if what == "fifo" else "far too large for a manifest") in r.stderr


# -- a damaged run still reports, and says what it left out ----------------------------------------


def test_report_names_a_truncated_or_missing_trace(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = json.loads((run / "manifest.json").read_text())
    first, last = (run / c["trace"] for c in (m["contexts"][0], m["contexts"][-1]))
    last.write_bytes(last.read_bytes()[: last.stat().st_size * 19 // 20])
    first.unlink()
    code, out, err = tk(capsys, "report", run, "-f", "json", "--out", "-")
    assert code == 0
    doc_ = json.loads(out)
    problems = [f["message"] for f in doc_["findings"] if f["kind"] == "trace-problem"]
    assert len(problems) == 2 and "is missing" in problems[0] and "truncated or corrupt gzip" in problems[1]
    assert [c["attention_share"] for c in doc_["contexts"]] == [None, None]  # left out, not made up
    assert err.count("tracekit: warning:") == 2
    code, out, err = tk(capsys, "report", run, "-f", "json", "--out", "-", "--partial")
    last_ctx = json.loads(out)["contexts"][-1]
    assert code == 0 and last_ctx["attention_share"] is not None and "usable prefix only" in err


# -- output policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "fmt", "needle"),
    [
        ("manifest.json", "json", "inside the run folder"),
        ("context-000032.pt.trace.json.gz", "md", "inside the run folder"),
        ("context-000032.enriched.json.gz", "json", "inside the run folder"),
        ("report-plots/categories.png", "json", "not tracekit's own output"),
        ("sub/notes.md", "md", "inside the run folder"),
    ],
)
def test_report_never_writes_over_the_run(
    target: str, fmt: str, needle: str, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "report-plots").mkdir()
    (run / "report-plots" / "categories.png").write_bytes(b"\x89PNG a plot")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for force in ([], ["--force"]):
        if force and needle != "inside the run folder":
            continue
        one_line_error(tk(capsys, "report", run, "-f", fmt, "--out", run / target, *force), needle)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_report_replaces_its_own_output_but_nothing_else(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("md", "html", "json"):
        assert tk(capsys, "report", run, "-f", fmt)[0] == 0
        mine = tmp_path / f"mine.{fmt}"
        mine.write_text("the user's own notes")
        one_line_error(tk(capsys, "report", run, "-f", fmt, "--out", mine), "is not tracekit's own output", "--force")
        assert mine.read_text() == "the user's own notes"
        shutil.copy(run / f"report.{fmt}", mine)  # a report the command wrote before: replaced without --force
        assert tk(capsys, "report", run, "-f", fmt, "--out", mine)[0] == 0
    plots = tmp_path / "new-plots"
    plots.mkdir()
    (plots / "categories.png").write_text("someone's picture")
    one_line_error(tk(capsys, "report", run, "-f", "md", "--out", tmp_path / "new.md"), "categories.png exists")
    assert (plots / "categories.png").read_text() == "someone's picture" and not leftovers(tmp_path)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda run: (run / "report-plots").write_text("a file"), "report-plots"),
        (lambda run: (run / "report.md").mkdir(), "is a folder"),
    ],
    ids=["report-plots is a file", "report.md is a folder"],
)
def test_report_files_in_the_way_are_one_line(
    make: object, needle: str, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(run)  # type: ignore[operator]
    one_line_error(tk(capsys, "report", run, "-f", "md"), needle)
    assert not leftovers(run)


def test_devices_are_written_through_never_replaced(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tk(capsys, "report", run, "-f", "json", "--out", "/dev/null")[0] == 0
    one_line_error(
        tk(capsys, "report", run, "-f", "json", "--out", "/dev/full"), "/dev/full", "no space left on device"
    )
    assert Path("/dev/null").is_char_device() and Path("/dev/full").is_char_device()


def test_disk_full_and_read_only_run_leave_the_old_report_and_no_temporary_file(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        r = Path(shutil.copytree(run, disk / "run"))
        assert tk(capsys, "report", r, "-f", "json")[0] == 0
        old = (r / "report.json").read_bytes()
        _fill(disk)
        one_line_error(tk(capsys, "report", r, "-f", "md"), "no space left on device")
        one_line_error(tk(capsys, "export", r, "--out", disk / "e.json"), "no space left on device")
        assert (r / "report.json").read_bytes() == old and not leftovers(disk)
        remount_read_only(disk)
        one_line_error(tk(capsys, "report", r, "-f", "json", "--force"), "read-only file system")
        one_line_error(tk(capsys, "export", r, "--out", disk / "e2.json"), "read-only file system")
        one_line_error(tk(capsys, "capture", "--out", disk / "runs"), "--out", "read-only file system")


def _fill(disk: Path) -> None:
    """Fill the disk to the last byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 10, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_export_refuses_what_is_not_its_to_replace(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine.json"
    mine.write_text("keep me")
    one_line_error(tk(capsys, "export", run, "--out", mine), "--force")
    one_line_error(tk(capsys, "export", run, "--out", run / "x.json.gz", "--force"), "inside the run folder")
    one_line_error(tk(capsys, "export", run, "--out", tmp_path), "is a folder")
    raw = next(run.glob("*.pt.trace.json.gz"))
    outside = tmp_path / "t.json.gz"
    shutil.copy(raw, outside)
    one_line_error(tk(capsys, "export", outside, "--out", outside, "--force"), "is the trace being exported")
    assert mine.read_text() == "keep me"


@pytest.mark.parametrize("case", ["truncated", "NaN literal", "args nested 5000 deep", "42", "no ph anywhere"])
def test_export_names_a_bad_trace_as_analyze_does(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(tmp_path / "bad.json", _BAD[case][0])
    analyzed = one_line_error(tk(capsys, "analyze", f))
    assert one_line_error(tk(capsys, "export", f, "--out", tmp_path / "out.json")) == analyzed
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("case", ["dur 1 and 400 zeros", "dur 1e400", "negative dur", "missing ts"])
def test_export_keeps_odd_events_and_writes_strict_json(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(tmp_path / "odd.json", doc(events(), raw=_ODD[case][0], at=100))
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


@pytest.mark.parametrize("name", ["a/b", "../escape", "..", ".", "x" * 300, "bad\x1b[2Jname", ""])
def test_capture_run_names_stay_one_folder_inside_out(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_line_error(tk(capsys, "capture", "--out", tmp_path / "runs", "--name", name), "--name")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


def test_capture_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    one_line_error(tk(capsys, "capture", "--out", tmp_path / "f"), "is a file; give a folder")


# -- error policy ------------------------------------------------------------------------------------


def test_tracebacks_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    one_line_error(tk(capsys, "analyze", tmp_path / "none.json"), "no such file")
    monkeypatch.setenv("TRACEKIT_DEBUG", "1")
    with pytest.raises(TraceFormatError):
        tk(capsys, "analyze", tmp_path / "none.json")


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "-inf"])
def test_peak_bandwidth_must_be_a_positive_number(value: str, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(
        tk(capsys, "report", run, "-f", "json", "--out", "-", f"--peak-bandwidth={value}"), "--peak-bandwidth"
    )


def test_unknown_check_metric_is_a_usage_error_not_a_failed_gate(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(
        tk(capsys, "report", run, "-f", "json", "--check", "tokens_per_sec@32>1"), "unknown metric", "tokens_per_s"
    )
    assert not (run / "report.json").exists()
    code, _, err = tk(capsys, "report", run, "-f", "json", "--check", "tokens_per_s@32>1e12")
    assert code == 1 and "check failed" in err


def test_report_json_is_strict_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit_manifest(run, lambda d: d["device"].update(measured_bandwidth_gbps=1e308, name="?"))
    code, out, err = tk(capsys, "report", run, "-f", "json", "--out", "-", "--peak-bandwidth", "1e-300")
    assert code == 0, err

    def refuse(token: str) -> None:
        raise ValueError(token)

    json.loads(out, parse_constant=refuse)  # no NaN, Infinity or -Infinity


@pytest.mark.parametrize("port", ["70000", "-1", "0", "http"])
def test_open_port_out_of_range_is_one_line(port: str, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(tk(capsys, "open", run, "--no-browser", "--timeout", "1", f"--port={port}"), "--port")


def test_open_privileged_port_is_one_line(run: Path) -> None:
    start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if start.exists() and int(start.read_text()) <= 80:
        pytest.skip("this machine lets anyone listen on port 80")
    for p in [run, *run.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    os.chmod(run.parent, 0o755)
    r = subprocess.run(
        [*as_nobody(), sys.executable, "-m", "tracekit", "open", str(run), "--port", "80", "--no-browser"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "permission denied" in r.stderr, r.stderr


def test_hta_failure_on_the_h100_fixture_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hta")
    from tests.conftest import H100, fixture_path

    code, out, err = tk(capsys, "analyze", fixture_path(H100), "--hta", "-f", "json")
    assert code == 0 and "Traceback" not in err
    notes = [ln for ln in err.splitlines() if "temporal_breakdown" in ln]
    assert len(notes) == 1 and "non_compute_time >= 0" in notes[0], err
    assert "idle_time_breakdown" in json.loads(out)["traces"][0]["hta"]


@pytest.mark.parametrize("weights", ["damaged safetensors", "pickle that runs code"])
def test_hf_weights_that_do_not_load_are_one_line_and_run_nothing(
    weights: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    import pickle

    from tracekit.capture.backends.hf import preset_config

    model = tmp_path / "model"
    preset_config("tiny").save_pretrained(model)
    marker = tmp_path / "PWNED"
    if weights == "damaged safetensors":
        (model / "model.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json}garbage")
    else:

        class Evil:
            def __reduce__(self) -> tuple[object, tuple[str]]:
                return (os.system, (f"touch {marker}",))

        (model / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
    line = one_line_error(
        tk(capsys, "capture", "--backend", "hf", "--model", model, "--out", tmp_path / "o"), "--model"
    )
    assert ("damaged" in line) if "safetensors" in weights else ("nothing in it ran" in line)
    assert not marker.exists()


# -- the loopback server ------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[TraceServer]:
    f = tmp_path / "t.json.gz"
    f.write_bytes(os.urandom(4 << 20))  # incompressible: more than the socket buffers hold
    server = TraceServer(f, 0, idle_s=0.5)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


def _ask(port: int, request: bytes) -> bytes:
    """Send ``request`` and read the whole reply (the server closes: ``Connection: close``)."""
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        while chunk := s.recv(1 << 20):
            reply += chunk
    return reply


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("127.0.0.1", 200),
        ("evil.example:{port}", 403),
        ("127.0.0.1.evil.example:{port}", 403),
        ("localhost:1", 403),
        (None, 403),
    ],
)
def test_server_answers_only_to_its_own_names(host: str | None, status: int, served: TraceServer) -> None:
    header = "" if host is None else f"Host: {host.format(port=served.port)}\r\n"
    for method in ("HEAD", "GET", "OPTIONS"):
        reply = _ask(served.port, f"{method} /t.json.gz HTTP/1.1\r\n{header}Connection: close\r\n\r\n".encode())
        ok = 204 if method == "OPTIONS" else 200
        assert reply.startswith(f"HTTP/1.1 {status if status != 200 else ok} ".encode()), (method, reply[:80])
        assert served.fetched.is_set() == (status == 200 and method != "HEAD")


def _reset(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    s.close()


def test_resets_and_half_open_connections_print_nothing_and_stay_bounded(
    served: TraceServer, capfd: pytest.CaptureFixture[str]
) -> None:
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(200)]
    time.sleep(0.3)
    assert threading.active_count() <= before + MAX_CLIENTS + 2
    for s in idle:
        s.sendall(b"GET /t.json.gz HTTP/1.1\r\nHo")  # half a request, then a reset
        _reset(s)
    for _ in range(50):  # a download reset after its first bytes
        s = socket.create_connection(("127.0.0.1", served.port), timeout=10)
        s.sendall(f"GET /t.json.gz HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n\r\n".encode())
        s.recv(100)
        _reset(s)
    time.sleep(0.8)  # past idle_s: every one of them is gone
    assert threading.active_count() <= before + 2 and not served.fetched.is_set()
    reply = _ask(served.port, b"GET /t.json.gz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(served.data) and served.fetched.is_set()
    out, err = capfd.readouterr()
    assert out == "" and err == "", err


def test_an_aborted_download_neither_prints_fetched_nor_stops(tmp_path: Path) -> None:
    f = tmp_path / "t.json.gz"
    f.write_bytes(os.urandom(4 << 20))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "tracekit", "open", str(f), "--no-browser", f"--port={port}", "--timeout=2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 60
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.1)
    s.sendall(f"GET /t.json.gz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    s.recv(1024)
    _reset(s)
    time.sleep(0.5)
    assert proc.poll() is None  # still serving
    _, err = proc.communicate(timeout=60)
    assert "timed out; server stopped" in err and "fetched" not in err and "Traceback" not in err, err


# -- capture under Ctrl-C and a full disk ---------------------------------------------------------------

_TINY = ["--context", "16,32,48,64", "--tokens", "3", "--profile-steps", "2", "--chunk", "64"]


def test_ctrl_c_while_the_enriched_twin_is_written_keeps_the_context(tmp_path: Path) -> None:
    """A real SIGINT, delivered while the pipeline writes a context's enriched twin."""
    import signal

    from tracekit.capture.backends.base import CaptureOptions
    from tracekit.capture.sweep import SweepOptions, run_capture
    from tracekit.manifest import read_manifest
    from tracekit.pipeline import enrich_context

    def enrich_interrupted(run_dir: Path, entry: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Python raises KeyboardInterrupt at the next bytecode
        enrich_context(run_dir, entry)  # type: ignore[arg-type]

    sweep = SweepOptions(contexts=[16, 32], tokens=3, profile_steps=2, out=tmp_path, name="r", measure_bandwidth=False)
    with pytest.raises(KeyboardInterrupt) as stop:
        run_capture(CaptureOptions(chunk=64), sweep, after_context=enrich_interrupted)
    m = read_manifest(stop.value.run_dir)  # type: ignore[attr-defined]
    assert m.interrupted and [(c.context_tokens, c.status) for c in m.contexts] == [(16, "ok")]
    assert load_trace(tmp_path / "r" / str(m.contexts[0].trace)).host and not leftovers(tmp_path)


def test_two_ctrl_c_keep_the_run_print_its_path_and_no_traceback(tmp_path: Path) -> None:
    import signal

    cmd = [sys.executable, "-m", "tracekit", "capture", *_TINY, "--out", str(tmp_path), "--name", "r"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    manifest = tmp_path / "r" / "manifest.json"
    deadline = time.time() + 240
    while not (manifest.exists() and json.loads(manifest.read_text() or "{}").get("contexts")):
        assert time.time() < deadline and proc.poll() is None, "the sweep ended before it could be interrupted"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err, err
    assert out.strip().splitlines()[-1] == str(tmp_path / "r")
    m = json.loads(manifest.read_text())
    assert m["interrupted"] and m["contexts"] and all(c["status"] == "ok" for c in m["contexts"])
    assert not leftovers(tmp_path)


def test_capture_on_a_full_disk_is_one_line_and_leaves_no_temporary_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_disk(tmp_path / "disk", "400k") as disk:
        one_line_error(tk(capsys, "capture", *_TINY, "--out", disk, "--name", "r"), "no space left on device")
        assert not leftovers(disk)
