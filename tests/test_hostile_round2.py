"""Bad input, faults and attack, second round (issue 28): numbers from every flag and variable,
outputs recognized by what tracekit wrote, work bounded by the input, the cluster, the server and
escaping. Each test makes its hostile input at test time and fails with its fix undone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer.main

from tests.helpers import edit_manifest
from tests.hostile import doc, events, leftovers, one_line_error, tk, write
from tracekit.cli import app
from tracekit.cli.common import Number

# -- numbers: every numeric flag of every command ---------------------------------------------------

# Positional arguments each command needs to reach its options (the values are never read: a
# bad number is refused while the command line is parsed).
POSITIONAL = {"analyze": ["x.json"], "report": ["run"], "diff": ["a", "b"], "export": ["t", "--out", "o"]}
POSITIONAL["open"] = ["t"]
HOSTILE_NUMBERS = ["99999999999999999999", "-1", "0", "nan", "inf", "-inf", "1e400", "9" * 5000, "1.5", "abc", ""]


def _numeric_options() -> list[tuple[str, str, Number]]:
    found = []
    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        for p in command.params:
            kind = type(p.type).__name__
            if kind in ("IntParamType", "FloatParamType", "IntRange", "FloatRange"):
                raise AssertionError(f"{name} {p.opts[0]} reads a number without the number policy (Number)")
            func = getattr(p.type, "func", None)
            if isinstance(func, Number):
                found.append((name, p.opts[0], func))
    return found


NUMERIC = _numeric_options()


def test_every_numeric_flag_is_under_the_number_policy() -> None:
    flags = {(c, f) for c, f, _ in NUMERIC}
    assert ("analyze", "--workers") in flags and ("open", "--timeout") in flags and ("capture", "--tokens") in flags
    assert len(flags) >= 12


@pytest.mark.parametrize(("command", "flag", "number"), NUMERIC, ids=[f"{c} {f}" for c, f, _ in NUMERIC])
def test_hostile_numbers_on_every_flag_are_one_line_with_the_range(
    command: str, flag: str, number: Number, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in HOSTILE_NUMBERS:
        x: float | None
        try:
            x = int(value) if number.integer else float(value)
        except ValueError:
            x = None
        if x is not None and x == x and number.lo <= x <= number.hi:
            continue  # a valid value (0 for --seed)
        line = one_line_error(tk(capsys, command, *POSITIONAL.get(command, []), f"{flag}={value}"), flag)
        assert "from" in line and "to" in line and len(line) < 300, line


def test_context_lists_are_range_checked(capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(tk(capsys, "capture", "--context", "128," + "9" * 5000), "--context", "16,777,216")
    one_line_error(tk(capsys, "capture", "--context", "128,99999999999"), "--context", "from 1")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRACEKIT_MAX_INFLATE", "abc"),
        ("TRACEKIT_MAX_INFLATE", "9" * 5000),
        ("TRACEKIT_MAX_INFLATE", "-1"),
        ("TRACEKIT_CHUNKED_BYTES", "1e400"),
        ("TRACEKIT_LOADER", "abc"),
        ("TRACEKIT_LOAD_WORKERS", "99999999999"),
        ("TRACEKIT_PROGRESS", "yes"),
    ],
)
@pytest.mark.parametrize("command", ["report", "diff", "analyze", "export"])
def test_bad_variables_are_one_line_before_any_work(
    variable: str, value: str, command: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv(variable, value)
    args = {"report": [run], "diff": [run, run], "analyze": [run], "export": [run, "--out", tmp_path / "e.json"]}
    one_line_error(tk(capsys, command, *args[command]), variable)
    assert not (run / "report.md").exists() and not (tmp_path / "e.json").exists()


def test_workers_are_capped_by_traces_and_cores_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.json", doc(events()))
    b = write(tmp_path / "b.json", doc(events()))
    # 2**63: once a cluster of that many processes (the driver grew 350 MB/s until killed).
    code, out, err = tk(capsys, "analyze", a, b, "--workers", str(2**62), "--format", "json")
    assert code == 2 and "--workers" in err  # beyond any machine: refused with the range
    code, out, err = tk(capsys, "analyze", a, "--workers", "4000", "--format", "json")
    assert code == 0 and "--workers 4000 lowered to 1" in err, err
    assert json.loads(out)


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1e400GB", "9" * 5000])
def test_memory_limit_is_checked_with_or_without_workers(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path / "a.json", doc(events()))
    one_line_error(tk(capsys, "analyze", a, a, "--memory-limit", value), "--memory-limit", "64MB")
    one_line_error(tk(capsys, "analyze", a, "--workers", "2", "--memory-limit", value), "--memory-limit")


# -- outputs: only its own files, only where told -------------------------------------------------


def test_report_never_writes_through_a_plots_link_leaving_the_run(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "categories.png").write_text("the user's picture")
    os.symlink("../victim", run / "report-plots")
    for force in ([], ["--force"]):
        one_line_error(tk(capsys, "report", run, *force), "report-plots", "leads out of")
    assert [p.name for p in victim.iterdir()] == ["categories.png"]
    assert (victim / "categories.png").read_text() == "the user's picture"
    assert not (run / "report.md").exists() and not leftovers(tmp_path)


def test_report_never_replaces_plots_it_did_not_write(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.md"
    assert tk(capsys, "report", run, "--out", notes)[0] == 0
    (tmp_path / "notes-plots" / "categories.png").write_text("the user's own picture")
    # notes.md is tracekit's; the picture the user put in its place is not.
    one_line_error(tk(capsys, "report", run, "--out", notes), "categories.png", "--force")
    assert (tmp_path / "notes-plots" / "categories.png").read_text() == "the user's own picture"
    assert tk(capsys, "report", run, "--out", notes, "--force")[0] == 0


def test_user_notes_that_begin_like_a_report_are_not_replaced(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes").mkdir()
    summary = tmp_path / "notes" / "summary.md"
    summary.write_text("# tracekit reports: my notes\n\nkeep me\n")
    one_line_error(tk(capsys, "report", run, "--out", summary), "not tracekit's own output")
    assert "keep me" in summary.read_text()
    # Nor a report the user edited since tracekit wrote it.
    assert tk(capsys, "report", run, "--out", tmp_path / "r.md")[0] == 0
    with open(tmp_path / "r.md", "a") as fh:
        fh.write("\nmy conclusions\n")
    one_line_error(tk(capsys, "report", run, "--out", tmp_path / "r.md"), "--force")
    assert "my conclusions" in (tmp_path / "r.md").read_text()


@pytest.mark.parametrize("style", ["sorted keys", "minified", "schema last"])
def test_a_reformatted_manifest_still_makes_a_run(style: str, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = json.loads((run / "manifest.json").read_text())
    if style == "sorted keys":
        text = json.dumps(m, sort_keys=True, indent=2)  # what jq -S writes
    elif style == "minified":
        text = " " * 300 + json.dumps(m, separators=(",", ":"))
    else:
        schema = m.pop("schema")
        text = json.dumps({**m, "schema": schema}, indent=4)
    (run / "manifest.json").write_text(text)
    before = {p: p.read_bytes() for p in run.iterdir() if p.is_file()}
    trace = next(p for p in run.iterdir() if p.name.endswith(".pt.trace.json.gz"))
    for force in ([], ["--force"]):
        one_line_error(tk(capsys, "export", run, "--out", trace, *force), "inside the run folder")
        one_line_error(
            tk(capsys, "report", run, "-f", "json", "--out", run / "manifest.json", *force), "inside the run"
        )
    assert {p: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


# -- manifests: absurd numbers, duplicates, and work bounded by limits --------------------------------


@pytest.mark.parametrize(
    ("where", "value"),
    [("context_tokens", 2**63 + 5), ("step", 1e308), ("step", 5e-324), ("prefill_s", 1e300), ("bandwidth", 1e300)],
)
@pytest.mark.parametrize("command", ["report", "diff"])
def test_absurd_manifest_numbers_are_refused_in_one_line(
    where: str, value: float, command: str, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(d: dict) -> None:  # type: ignore[type-arg]
        c = d["contexts"][-1]
        if where == "context_tokens":
            c["context_tokens"] = value
        elif where == "step":
            c["timings"]["decode_s_by_round"][0][-1] = value
        elif where == "bandwidth":
            d["device"]["measured_bandwidth_gbps"] = value
        else:
            c["timings"][where] = value

    edit_manifest(run, edit)
    args = [run, run] if command == "diff" else [run, "-f", "json", "--out", "-"]
    line = one_line_error(tk(capsys, command, *args), "manifest.json", "outside the range")
    assert "Warning" not in line


def test_a_context_listed_twice_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_manifest(run, lambda d: d["contexts"].append(d["contexts"][-1]))
    one_line_error(tk(capsys, "report", run, "--check", "tokens_per_s@160>=1"), "listed twice")


def test_many_contexts_stop_at_the_limit_before_they_are_built(
    run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1,000,000 failed contexts took 6 GB; the same refusal, at a limit lowered for the test.
    monkeypatch.setenv("TRACEKIT_MAX_CONTEXTS", "100")
    edit_manifest(run, lambda d: d.__setitem__("contexts", [
        {"context_tokens": i + 1, "status": "failed", "error": "x"} for i in range(3000)
    ]))  # fmt: skip
    one_line_error(tk(capsys, "report", run), "3,000 contexts", "limit of 100", "TRACEKIT_MAX_CONTEXTS=3000")
    monkeypatch.setenv("TRACEKIT_MAX_CONTEXTS", "1000000000000")
    one_line_error(tk(capsys, "report", run), "TRACEKIT_MAX_CONTEXTS")


def test_many_steps_stop_at_the_limit(
    run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 contexts x 1000 rounds x 2000 steps ran for minutes; the same refusal, at a lower limit.
    monkeypatch.setenv("TRACEKIT_MAX_STEPS", "5000")
    edit_manifest(run, lambda d: [c["timings"].__setitem__("decode_s_by_round", [[0.01] * 200] * 20) for c in d["contexts"]])
    one_line_error(tk(capsys, "report", run), "decode steps", "limit of 5,000", "TRACEKIT_MAX_STEPS=")


def test_contexts_naming_one_trace_are_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 3,000 such contexts re-analyzed the one trace 3,000 times (55 ms each).
    def edit(d: dict) -> None:  # type: ignore[type-arg]
        first = d["contexts"][0]
        d["contexts"] += [{**first, "context_tokens": 1000 + i} for i in range(3)]

    edit_manifest(run, edit)
    one_line_error(tk(capsys, "report", run), "name the same trace")


# -- walks: globs and folders ---------------------------------------------------------------------


def test_a_glob_through_links_back_into_its_tree_ends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gl = tmp_path / "gl"
    (gl / "sub").mkdir(parents=True)
    write(gl / "sub" / "x.json.gz", doc(events()))
    os.symlink(".", gl / "a")
    os.symlink(".", gl / "b")  # two links: 2**depth paths, memory grew until killed
    for pattern in (f"{gl}/**/*.json.gz", f"{gl}/*/*.json.gz", str(gl)):
        code, out, err = tk(capsys, "analyze", pattern, "--format", "json")
        assert code == 0, err
        assert "/a/" not in out and "/b/" not in out and f"{gl}/sub/x.json.gz" in out


def test_a_walk_stops_at_its_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(30):
        (tmp_path / "d" / f"f{i}").mkdir(parents=True)
    monkeypatch.setenv("TRACEKIT_MAX_WALK", "20")
    one_line_error(tk(capsys, "analyze", tmp_path / "d"), "more than 20", "TRACEKIT_MAX_WALK=40")
    one_line_error(tk(capsys, "analyze", f"{tmp_path}/d/**/*.json"), "TRACEKIT_MAX_WALK")


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_a_folder_1100_levels_deep_is_walked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bottom = tmp_path / "deep"  # 1,100 levels were once "nested too deeply to read"
    bottom.mkdir()
    for _ in range(1100):  # one level at a time: mkdir(parents=True) recurses once per level
        bottom = bottom / "d"
        os.mkdir(bottom)
    write(bottom / "x.json", doc(events()))
    try:
        code, out, err = tk(capsys, "analyze", tmp_path / "deep", "--format", "json")
        assert code == 0 and json.loads(out), err
    finally:  # bottom up: pytest's own clean-up recurses once per level
        (bottom / "x.json").unlink()
        for level in [bottom, *bottom.parents]:
            if level == tmp_path:
                break
            level.rmdir()


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_an_unreadable_subfolder_is_named_not_skipped(tmp_path: Path) -> None:
    import subprocess
    import sys
    import tempfile

    from tests.helpers import ROOT
    from tests.hostile import as_nobody

    if not as_nobody():
        pytest.skip("needs root to drop to another user (root reads every folder)")
    top = Path(tempfile.mkdtemp(prefix="tk-unreadable-"))
    try:
        os.chmod(top, 0o755)
        write(top / "a.json", doc(events()))
        (top / "locked").mkdir(mode=0o755)
        write(top / "locked" / "b.json", doc(events()))
        os.chmod(top / "a.json", 0o644)
        os.chmod(top / "locked", 0o000)
        r = subprocess.run(
            [*as_nobody(), sys.executable, "-m", "tracekit", "analyze", str(top)],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert r.returncode == 2 and "locked: cannot read this folder (permission denied)" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1
        os.chmod(top, 0o000 | 0o711)
        r = subprocess.run(
            [*as_nobody(), sys.executable, "-m", "tracekit", "analyze", str(top)],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert r.returncode == 2 and "cannot read this folder" in r.stderr and "no *.json" not in r.stderr, r.stderr
    finally:
        os.chmod(top, 0o755)
        os.chmod(top / "locked", 0o755)
        import shutil

        shutil.rmtree(top)


# -- the Perfetto server and `open` -----------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    import threading

    from tracekit.perfetto.serve import TraceServer

    f = tmp_path / "t.json.gz"
    f.write_bytes(os.urandom(1 << 20))
    s = TraceServer(f, 0, idle_s=3.0, head_s=1.0)
    t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield s
    s.shutdown()
    s.server_close()


def _get(port: int, request: bytes, timeout: float = 10) -> bytes:
    import socket

    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(request)
        while chunk := c.recv(1 << 20):
            reply += chunk
    return reply


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_a_slowloris_does_not_lock_out_the_ui(server) -> None:  # type: ignore[no-untyped-def]
    import socket
    import threading
    import time

    from tracekit.perfetto.serve import MAX_CLIENTS

    stop = threading.Event()

    def trickle() -> None:
        conns = []
        try:
            for _ in range(MAX_CLIENTS + 8):
                c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                c.sendall(f"GET /{server.route} HTTP/1.1\r\n".encode())
                conns.append(c)
            while not stop.is_set():
                for c in conns:  # a header line now and then: a per-read timeout never fires
                    try:
                        c.sendall(b"X-a: b\r\n")
                    except OSError:
                        pass
                time.sleep(0.3)
        finally:
            for c in conns:
                c.close()

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    time.sleep(1.0)
    try:
        for _ in range(3):  # once: every legitimate GET closed with 0 bytes while the trickle lasted
            reply = _get(
                server.port, f"GET /{server.route} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(server.data), reply[:80]
    finally:
        stop.set()
        t.join(10)


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_a_request_head_trickled_past_its_deadline_is_cut(server) -> None:  # type: ignore[no-untyped-def]
    import socket
    import time

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(f"GET /{server.route} HTTP/1.1\r\n".encode())
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 5:
            try:
                c.sendall(b"X-a: b\r\n")
            except OSError:
                closed = True
                break
            c.settimeout(0.3)
            try:
                if c.recv(100) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed and time.monotonic() - start < 3  # head_s is 1 s here


def test_two_host_headers_are_refused(server) -> None:  # type: ignore[no-untyped-def]
    two = f"GET /{server.route} HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    assert _get(server.port, two.encode()).startswith(b"HTTP/1.1 403 ")
    assert not server.fetched.is_set()


def test_a_cross_site_page_cannot_fetch_the_trace_or_stop_the_server(server) -> None:  # type: ignore[no-untyped-def]
    # A page anywhere can make the browser GET a predictable name (no-cors): the name holds a
    # per-run random token, and a browser's cross-site no-cors request is refused outright.
    guess = f"GET /{server.name} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert _get(server.port, guess.encode()).startswith(b"HTTP/1.1 404 ")
    marked = (
        f"GET /{server.route} HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Mode: no-cors\r\n"
        "Sec-Fetch-Site: cross-site\r\nConnection: close\r\n\r\n"
    )
    assert _get(server.port, marked.encode()).startswith(b"HTTP/1.1 403 ")
    assert not server.fetched.is_set() and server.fetches == 0
    assert len(server.token) >= 16 and server.token in server.url


def _open(args: list[str], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.helpers import ROOT

    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full.pop("DISPLAY", None)
    full.pop("WAYLAND_DISPLAY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tracekit", "open", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=full,
    )  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fetch(url: str) -> bytes:
    import urllib.request

    target = url.split("url=", 1)[1]
    with urllib.request.urlopen(target, timeout=30) as r:  # noqa: S310 - loopback
        return bytes(r.read())


def test_open_serves_reloads_until_stopped_and_says_ssh(run: Path) -> None:
    import gzip
    import signal

    port = _free_port()
    proc = _open([str(run), "--no-browser", f"--port={port}", "--timeout=60"])
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    first, second = _fetch(url), _fetch(url)  # the tab reloaded: served again
    assert first == second and b"tracekit" in gzip.decompress(first)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "after 2 fetches" in err, err
    assert f"ssh -L {port}:127.0.0.1:{port}" in err and "Traceback" not in err


def test_open_once_stops_after_the_first_fetch(run: Path) -> None:
    port = _free_port()
    proc = _open([str(run), "--no-browser", f"--port={port}", "--once", "--timeout=60"])
    assert proc.stdout is not None
    _fetch(proc.stdout.readline().strip())
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "after 1 fetch" in err, err


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_open_a_foreign_trace_serves_it_with_tracekits_tracks(tmp_path: Path) -> None:
    import gzip

    f = write(tmp_path / "foreign.json", doc(events()))
    before = f.read_bytes()
    port = _free_port()
    proc = _open([str(f), "--no-browser", f"--port={port}", "--once", "--timeout=60"])
    assert proc.stdout is not None
    served = json.loads(gzip.decompress(_fetch(proc.stdout.readline().strip())))
    proc.communicate(timeout=60)
    names = {e.get("args", {}).get("name") for e in served["traceEvents"] if e.get("ph") == "M"}
    assert "tracekit" in names
    assert any("tracekit.category" in (e.get("args") or {}) for e in served["traceEvents"])
    assert f.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["foreign.json"]


def test_open_writes_the_enriched_trace_only_beside_its_raw_trace(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for p in run.glob("*.enriched.json.gz"):
        p.unlink()
    (run / "report.md").write_text("the report")
    edit_manifest(run, lambda d: [c.__setitem__("enriched_trace", "report.md") for c in d["contexts"]])
    code, out, err = tk(capsys, "open", run, "--no-browser", "--timeout", "0.5")
    assert code == 2 and "nothing fetched" in err
    assert (run / "report.md").read_text() == "the report"
    edit_manifest(run, lambda d: [c.__setitem__("enriched_trace", "sub/deeper/new.json.gz") for c in d["contexts"]])
    tk(capsys, "open", run, "--no-browser", "--timeout", "0.5")
    assert not (run / "sub").exists() and any(run.glob("*.enriched.json.gz"))


# -- export -------------------------------------------------------------------------------------------


def test_export_strip_metadata_leaves_out_the_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = doc(events())[:-1] + b', "metadata": {"env": {"AWS_SECRET": "hunter2"}}}'
    f = write(tmp_path / "t.json", data)
    assert tk(capsys, "export", f, "--out", tmp_path / "kept.json")[0] == 0
    assert "hunter2" in (tmp_path / "kept.json").read_text()
    assert tk(capsys, "export", f, "--out", tmp_path / "clean.json", "--strip-metadata")[0] == 0
    text = (tmp_path / "clean.json").read_text()
    assert "hunter2" not in text and "tracekit.category" in text


def test_export_to_stdout_and_to_a_device(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    from tracekit.cli import main

    f = write(tmp_path / "t.json", doc(events()))
    assert main(["export", str(f), "--out", "-"]) == 0
    out, err = capfdbinary.readouterr()
    assert json.loads(out)["traceEvents"] and not (Path.cwd() / "-").exists()
    assert main(["export", str(f), "--out", "/dev/null"]) == 0
    out, err = capfdbinary.readouterr()
    assert b"-100" not in err and b"+" in err, err


# -- Dask -----------------------------------------------------------------------------------------------


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize("address", ["garbage", "", "foo://bar:1", "tcp://host:99999", "tcp://a b:1"])
def test_a_malformed_scheduler_address_is_one_line_at_once(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    import time

    a = write(tmp_path / "a.json", doc(events()))
    b = write(tmp_path / "b.json", doc(events()))
    start = time.monotonic()
    one_line_error(tk(capsys, "analyze", a, b, "--scheduler", address), "not a Dask scheduler")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address or " ")
    one_line_error(tk(capsys, "analyze", a, b), "DASK_SCHEDULER_ADDRESS")
    assert time.monotonic() - start < 20  # once: a 60 s hang and a Client.__del__ traceback


def test_a_refused_scheduler_port_is_one_line_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    a = write(tmp_path / "a.json", doc(events()))
    one_line_error(tk(capsys, "analyze", a, a.with_name("a2.json"), "--scheduler", f"tcp://127.0.0.1:{_free_port()}"))


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize("peer", ["http", "silent"])
def test_a_port_that_is_no_scheduler_is_refused_within_the_timeout(peer: str, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    import http.server
    import socket
    import threading
    import time

    from tracekit.errors import UserError
    from tracekit.fleet.cluster import check_scheduler

    if peer == "http":  # once a hang of 150 s and more
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        port, close = srv.server_address[1], srv.shutdown
    else:  # accepts and never speaks: once a hang of 590 s and more
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port, close = listener.getsockname()[1], listener.close
    try:
        start = time.monotonic()
        with pytest.raises(UserError, match="Dask scheduler"):
            check_scheduler(f"tcp://127.0.0.1:{port}", timeout=1.0)
        assert time.monotonic() - start < 10
    finally:
        close()


@pytest.mark.slow  # starts Dask workers
def test_ctrl_c_while_the_cluster_starts_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    for name in ("a", "b"):
        write(tmp_path / f"{name}.json", doc(events(20_000)))  # about 4 s in all: Ctrl-C comes before the end
    for delay in (0.7, 2.0):  # in the imports; while the workers start
        p = subprocess.Popen(
            [sys.executable, "-m", "tracekit", "analyze", str(tmp_path), "--workers", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        time.sleep(delay)
        os.killpg(p.pid, signal.SIGINT)  # as a terminal does: to every process of the group
        _, err = p.communicate(timeout=120)
        time.sleep(0.5)  # the workers' own last words, if any, would come now
        lines = err.splitlines()
        assert p.returncode == 130 and len(lines) == 1 and lines[0].startswith("tracekit: interrupted"), (delay, err)
        assert "leaked semaphore" not in err and "Traceback" not in err


# -- escaping: one policy for terminal, Markdown, HTML and CSV -----------------------------------------


def test_csv_cells_never_start_a_spreadsheet_formula(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv
    import io

    evs = events()
    for i, name in enumerate(['=HYPERLINK("http://evil.example")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]):
        evs[4 * i + 3] = {**evs[4 * i + 3], "name": name}
    f = write(tmp_path / "t.json", doc(evs))
    code, out, err = tk(capsys, "analyze", f, "--by", "kernel", "--format", "csv")
    assert code == 0, err
    cells = [c for row in csv.reader(io.StringIO(out)) for c in row]
    assert not any(c[:1] in "=+@" for c in cells if c), cells
    assert not any(c.startswith("-") and not c.replace(".", "").lstrip("-").isdigit() for c in cells), cells
    assert '\'=HYPERLINK("http://evil.example")' in cells


def test_the_html_report_escapes_a_device_name_like_markdown(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_manifest(run, lambda d: d["device"].__setitem__("name", "GPU\x1b]0;owned\x07\u202eevil"))
    for fmt in ("html", "md"):
        assert tk(capsys, "report", run, "-f", fmt)[0] == 0
        text = (run / f"report.{fmt}").read_text()
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, fmt
        assert "\\x1b" in text and "\\u202e" in text, fmt


# -- the error policy at the edges: closed and full streams, Ctrl-C with JSON ------------------------


def _tk_proc(args: list[str], **kw: object):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.helpers import ROOT

    return subprocess.run(
        [sys.executable, "-m", "tracekit", *args], capture_output=False, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, **kw,
    )  # fmt: skip


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_a_closed_stdout_is_one_line_and_exit_2(fmt: str, tmp_path: Path) -> None:
    import subprocess

    f = write(tmp_path / "t.json", doc(events()))
    err = tmp_path / "err"
    with open(err, "w") as e:  # once: internal error ('NoneType' ... isatty), or JSON lost with exit 0
        r = _tk_proc(["analyze", str(f), "-f", fmt], stdout=subprocess.DEVNULL, stderr=e, pass_fds=())
        assert r.returncode == 0  # an open stdout: fine
        import sys

        from tests.helpers import ROOT

        r = subprocess.run(
            f"exec {sys.executable} -m tracekit analyze {f} -f {fmt} >&-", shell=True, stderr=e, timeout=120,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    lines = err.read_text().splitlines()
    assert r.returncode == 2 and lines == [
        "tracekit: error: stdout is closed; tracekit writes its results there (redirect it to a file or /dev/null)"
    ], lines


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_an_unwritable_stderr_keeps_exit_2(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        r = _tk_proc(["analyze", str(tmp_path / "missing.json")], stderr=full, stdout=full)
    assert r.returncode == 2  # once: 1, the interpreter's own failure to print


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_ctrl_c_during_json_analyze_still_prints_the_document(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    write(tmp_path / "a-first.json", doc(events(40_000)))  # still being read when Ctrl-C comes
    for i in range(5):
        write(tmp_path / f"t{i:03d}.json", doc(events(200)))
    p = subprocess.Popen(
        [sys.executable, "-m", "tracekit", "analyze", str(tmp_path), "--workers", "1", "-f", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    summary = json.loads(out)["summary"]
    assert summary["interrupted"] is True, summary


@pytest.mark.parametrize(
    ("check", "needle"),
    [
        ("error@160>=1", "unknown metric 'error'"),
        ("tokens_per_s@" + "9" * 5000 + ">=1", "the context is a whole number"),
        ("tokens_per_s@160>=" + "9" * 5000, "finite number"),
        ("tokens_per_s@160>=1e400", "finite number"),
    ],
)
def test_check_expressions_are_range_checked(
    check: str, needle: str, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(tk(capsys, "report", run, "-f", "json", "--out", "-", "--check", check), needle)
    assert "error," not in line.split("one of", 1)[-1]  # a text field is never offered as a metric


# -- work bounded by the input: string tables ---------------------------------------------------------


@pytest.mark.parametrize("loader", ["auto", "chunked", "whole"])
@pytest.mark.parametrize("command", ["analyze", "export"])
def test_unique_names_stop_at_the_limit(
    loader: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1,000,000 unique names (80 MB of JSON) took 888 MB and 25 s; the same refusal, at a limit
    # lowered for the test.
    evs = [
        {"ph": "X", "cat": "cpu_op", "name": f"op_{i}", "pid": 1, "tid": 1, "ts": 5.1e12 + 10 * i, "dur": 5}
        for i in range(3000)
    ]
    f = write(tmp_path / "names.json", doc(evs))
    monkeypatch.setenv("TRACEKIT_MAX_NAMES", "1000")
    monkeypatch.setenv("TRACEKIT_LOADER", loader)
    monkeypatch.setenv("TRACEKIT_CHUNKED_BYTES", "4096" if loader == "chunked" else "33554432")
    args = ["--out", tmp_path / "e.json"] if command == "export" else []
    one_line_error(tk(capsys, command, f, *args), "more than 1,000 distinct event names", "TRACEKIT_MAX_NAMES=2000")
    monkeypatch.setenv("TRACEKIT_MAX_NAMES", "5000")
    assert tk(capsys, command, f, *args)[0] == 0


def test_an_export_that_would_not_fit_in_memory_is_refused_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4,000,000 kernel events (402 MB of JSON) peaked at 5.48 GB; the same refusal, at a limit
    # lowered for the test.
    f = write(tmp_path / "t.json.gz", doc(events(400)))
    monkeypatch.setenv("TRACEKIT_EXPORT_MEMORY", "1M")
    one_line_error(tk(capsys, "export", f, "--out", tmp_path / "e.json"), "14x its JSON", "TRACEKIT_EXPORT_MEMORY=")
    assert not (tmp_path / "e.json").exists()
    monkeypatch.setenv("TRACEKIT_EXPORT_MEMORY", "1G")
    assert tk(capsys, "export", f, "--out", tmp_path / "e.json")[0] == 0


# -- model folders ------------------------------------------------------------------------------------


def _tiny_llama(folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_weights_that_do_not_match_the_config_are_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    import torch
    from safetensors.torch import save_file

    from tracekit.capture.backends.base import CaptureOptions
    from tracekit.capture.backends.hf import HFBackend
    from tracekit.errors import UserError

    folder = _tiny_llama(tmp_path / "m")
    for f in folder.glob("*.safetensors"):
        f.unlink()
    save_file({"unrelated.weight": torch.zeros(4, 4)}, str(folder / "model.safetensors"))
    capfd.readouterr()
    with pytest.raises(UserError, match=r"model\.safetensors does not match config\.json .*missing"):
        HFBackend(CaptureOptions(backend="hf", model=str(folder), device="cpu"))
    out, err = capfd.readouterr()
    assert "\x1b[" not in err and "\x1b[" not in out and len(err.splitlines()) <= 1, err  # no raw load report


@pytest.mark.slow  # imports transformers and writes a tiny model (seconds)
@pytest.mark.parametrize(("key", "value"), [("num_hidden_layers", -1), ("hidden_size", 0), ("vocab_size", 10**30)])
def test_absurd_shapes_in_config_json_are_one_line(key: str, value: int, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tracekit.capture.backends.hf_load import check_model_dir
    from tracekit.errors import UserError

    folder = _tiny_llama(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=f"config.json has {key}"):
        check_model_dir(str(folder))


@pytest.mark.slow  # starts Dask workers
def test_a_scheduler_killed_mid_run_is_one_line_per_lost_trace(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    (tmp_path / "traces").mkdir()
    for i in range(12):
        write(tmp_path / "traces" / f"t{i:02d}.json", doc(events(20_000)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    sched_file = tmp_path / "scheduler.json"
    local = ["--host", "127.0.0.1", "--no-dashboard"]
    with open(tmp_path / "dask.log", "wb") as log:
        sched = subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--port", "0", "--scheduler-file", str(sched_file), *local],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        worker = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-nanny", *local],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
        try:
            p = subprocess.Popen(
                [sys.executable, "-m", "tracekit", "analyze", str(tmp_path / "traces"), "--scheduler", address],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
            )  # fmt: skip
            time.sleep(5)
            sched.kill()  # once: Dask's own ERROR log with two tracebacks came first
            _, err = p.communicate(timeout=120)
        finally:
            for proc in (worker, sched):
                proc.kill()
                proc.wait(timeout=30)
    lines = err.splitlines()
    assert p.returncode == 2 and "Traceback" not in err and " ERROR " not in err, err
    assert lines and all(ln.startswith("tracekit: ") for ln in lines), err
