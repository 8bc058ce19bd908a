"""Bad input, faults and attack: run folders and what the commands write. Manifests cannot point
outside their run, damaged runs still report and say what they left out, no command overwrites
what is not its own or leaves a temporary file, every failure is one line, and a capture survives
Ctrl-C and a full disk. Faults are real: a full or read-only tmpfs, /dev/full, signals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, edit_manifest
from tests.hostile import (
    leftovers,
    one_line_error,
    remount_read_only,
    small_disk,
    tk,
)
from tracekit.errors import UserError
from tracekit.trace.read import load_trace

# -- path policy and manifests ---------------------------------------------------------------------


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
    (run.parent / "secret.txt").write_text("the content of a file outside the run")
    os.symlink(run.parent / "secret.txt", run / "link-out.json.gz")
    edit_manifest(run, lambda d: d["contexts"][-1].__setitem__(field, value))
    args = {"report": ["--format", "json", "--out", "-"], "open": ["--no-browser", "--timeout", "1"]}
    args["export"] = ["--out", run.parent / "out.json"]
    result = tk(capsys, command, run, *args[command])
    one_line_error(result, "outside the run folder")
    assert "the content of a file" not in result[1] + result[2]
    assert not (run.parent / "out.json").exists()  # a refused export writes nothing


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
        edit_manifest(run, edit)
    args = ["report", run, "-f", "json", "--out", "-"] if command == "report" else ["diff", small_run, run]
    one_line_error(tk(capsys, *args), "manifest", problem)


def test_null_model_fields_are_fine(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_manifest(run, lambda d: d["model"].update(layers=None, heads=None))
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


def test_report_names_a_truncated_or_missing_trace(
    run: Path, small_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    code, out, err = tk(capsys, "diff", small_run, run, "-f", "json")
    assert code == 0 and err.count("tracekit: warning:") == 2  # diff says so too
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
        assert tk(capsys, "report", run, "-f", fmt, "--out", mine, "--force")[0] == 0
        # A report the command wrote there before: replaced without --force.
        assert tk(capsys, "report", run, "-f", fmt, "--out", mine)[0] == 0
        # The same report copied there by the user is not tracekit's output there (the ledger
        # marks what was written where, not what a file looks like).
        shutil.copy(run / f"report.{fmt}", tmp_path / f"copy.{fmt}")
        one_line_error(tk(capsys, "report", run, "-f", fmt, "--out", tmp_path / f"copy.{fmt}"), "--force")
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


@pytest.mark.parametrize("command", ["export", "report"])
def test_a_link_given_as_out_is_neither_written_through_nor_replaced(
    command: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path / "kept.txt"
    kept.write_text("keep me")
    dangling, live = tmp_path / "dangling.json", tmp_path / "live.json"
    os.symlink(tmp_path / "nowhere", dangling)
    os.symlink(kept, live)
    fmt = ["-f", "json"] if command == "report" else []
    for force in ([], ["--force"]):
        one_line_error(tk(capsys, command, run, *fmt, "--out", dangling, *force), "symbolic link", "fresh")
        one_line_error(tk(capsys, command, run, *fmt, "--out", live, *force), "symbolic link", "fresh")
    assert os.readlink(dangling) == str(tmp_path / "nowhere") and not (tmp_path / "nowhere").exists()
    assert os.readlink(live) == str(kept) and kept.read_text() == "keep me"
    assert leftovers(tmp_path) == []


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
    one_line_error(tk(capsys, "report", tmp_path / "none"), "not a run directory")
    monkeypatch.setenv("TRACEKIT_DEBUG", "1")
    with pytest.raises(UserError):
        tk(capsys, "report", tmp_path / "none")


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
    edit_manifest(run, lambda d: d["device"].update(measured_bandwidth_gbps=1e15, name="?"))  # the extremes allowed
    code, out, err = tk(capsys, "report", run, "-f", "json", "--out", "-", "--peak-bandwidth", "0.001")
    assert code == 0, err

    def refuse(token: str) -> None:
        raise ValueError(token)

    json.loads(out, parse_constant=refuse)  # no NaN, Infinity or -Infinity


@pytest.mark.slow  # HolisticTraceAnalysis loads the whole trace into pandas
def test_hta_failure_on_the_h100_fixture_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hta")
    from tests.helpers import H100, fixture_path

    code, out, err = tk(capsys, "analyze", fixture_path(H100), "--hta", "-f", "json")
    assert code == 0 and "Traceback" not in err
    notes = [ln for ln in err.splitlines() if "temporal_breakdown" in ln]
    assert len(notes) == 1 and "non_compute_time >= 0" in notes[0], err
    assert "idle_time_breakdown" in json.loads(out)["traces"][0]["hta"]


@pytest.mark.slow  # imports transformers (2.1 s, the slowest of make unit)
@pytest.mark.parametrize("weights", ["damaged safetensors", "pickle that runs code"])
def test_hf_weights_that_do_not_load_are_one_line_and_run_nothing(
    weights: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("transformers")
    import pickle

    from tracekit.capture.backends.hf_load import preset_config

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


# -- capture under Ctrl-C and a full disk ---------------------------------------------------------------

_TINY = ["--context", "16,32,48,64", "--tokens", "4", "--profile-steps", "2", "--chunk", "64", "--rounds", "1"]


@pytest.mark.slow
def test_ctrl_c_while_the_enriched_twin_is_written_keeps_the_context(tmp_path: Path) -> None:
    """A real SIGINT, delivered while the pipeline writes a context's enriched twin."""
    import signal

    from tracekit.capture.backends.base import CaptureOptions
    from tracekit.capture.sweep import SweepOptions, run_capture
    from tracekit.manifest import read_manifest
    from tracekit.perfetto.export import enrich_context

    def enrich_interrupted(run_dir: Path, entry: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Python raises KeyboardInterrupt at the next bytecode
        enrich_context(run_dir, entry)  # type: ignore[arg-type]

    sweep = SweepOptions(
        contexts=[16, 32], tokens=3, profile_steps=2, out=tmp_path, name="r", measure_bandwidth=False, rounds=1
    )
    with pytest.raises(KeyboardInterrupt) as stop:
        run_capture(CaptureOptions(chunk=64), sweep, after_context=enrich_interrupted)
    m = read_manifest(stop.value.run_dir)  # type: ignore[attr-defined]
    assert m.interrupted and [(c.context_tokens, c.status) for c in m.contexts] == [(16, "ok"), (32, "ok")]
    for c in m.contexts:  # every measured context kept, its trace whole; no enriched twin half-written
        assert load_trace(tmp_path / "r" / str(c.trace)).host and c.enriched_trace is None
    assert not leftovers(tmp_path) and not list((tmp_path / "r").glob("*.enriched.json.gz"))


@pytest.mark.slow
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


@pytest.mark.slow
def test_capture_on_a_full_disk_is_one_line_and_leaves_no_temporary_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_disk(tmp_path / "disk", "400k") as disk:
        one_line_error(tk(capsys, "capture", *_TINY, "--out", disk, "--name", "r"), "no space left on device")
        assert not leftovers(disk)
