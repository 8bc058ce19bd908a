"""Perfetto: the one-file loopback server, and enriched traces checked against the JSON importer's rules."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import io
import json
import socket
import threading
from pathlib import Path

import pytest

from tests.helpers import H100, fixture_path, run_cli
from tracekit.analysis.analyze import analyze_trace
from tracekit.errors import UserError
from tracekit.perfetto.export import TRACEKIT_PID, enrich_file
from tracekit.perfetto.serve import PERFETTO_ORIGIN, TraceServer, perfetto_url
from tracekit.trace.read import load_trace


@contextlib.contextmanager
def serving(path: Path):  # type: ignore[no-untyped-def]
    server = TraceServer(path, 0)  # port 0: a free loopback port for the test
    result: dict[str, bool] = {}
    t = threading.Thread(target=lambda: result.setdefault("fetched", server.serve_until_fetched(30)))
    t.start()
    try:
        yield server, result
    finally:
        if t.is_alive():
            server.fetched.set()
        t.join(10)


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_serves_the_one_file_with_cors_then_stops(tmp_path: Path) -> None:
    f = tmp_path / "trace one.json.gz"
    f.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 40)
    with serving(f) as (server, result):
        assert server.server_address[0] == "127.0.0.1"
        port = server.port
        origin = {"Origin": PERFETTO_ORIGIN}
        route = f"/{server.token}/trace%20one.json.gz"
        status, h, _ = _request(port, "OPTIONS", route, {**origin, "Access-Control-Request-Method": "GET"})
        assert status == 204 and h["access-control-allow-origin"] == PERFETTO_ORIGIN
        assert "GET" in h["access-control-allow-methods"]
        for bad in (
            "/../trace%20one.json.gz",
            "/%2e%2e/etc/passwd",
            "/",
            "/other.json",
            f"{route}/x",
            "/trace%20one.json.gz",
        ):
            status, h, _ = _request(port, "GET", bad, origin)
            assert status == 404, bad
        status, _, _ = _request(port, "POST", route, origin)
        assert status == 405
        assert not server.fetched.is_set()
        status, h, body = _request(port, "GET", route, origin)
        assert status == 200 and body == f.read_bytes()
        assert h["access-control-allow-origin"] == PERFETTO_ORIGIN and int(h["content-length"]) == len(body)
    assert result["fetched"] is True
    with pytest.raises(OSError):  # stopped after the fetch
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_never_listens_beyond_loopback(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text("{}")
    server = TraceServer(f, 0)
    try:
        host, _ = server.socket.getsockname()
        assert host == "127.0.0.1"
    finally:
        server.server_close()


def test_busy_port_is_one_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text("{}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is in use.*lsof -i :{port}"):
            TraceServer(f, port)


def test_url_points_the_ui_at_loopback() -> None:
    assert perfetto_url(9001, "context-004096.enriched.json.gz") == (
        "https://ui.perfetto.dev/#!/?url=http://127.0.0.1:9001/context-004096.enriched.json.gz"
    )


def test_open_cli_prints_url_and_times_out(small_run: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("open", str(small_run), "--no-browser", "--port", str(port), "--timeout", "1")
    assert r.returncode == 2, r.stderr  # nothing fetched it
    token = r.stdout.strip().rsplit("/", 2)[1]
    assert r.stdout.strip() == perfetto_url(port, "context-000160.enriched.json.gz", token) and len(token) >= 16
    assert "timed out after 1 s and nothing fetched the trace" in r.stderr


# --- enriched traces --------------------------------------------------------------------------------

PHASES = {"X", "B", "E", "i", "I", "C", "M", "s", "f", "t", "b", "e", "n"}


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _flow_halves(events: list[dict[str, object]]) -> dict[tuple[object, object], list[str]]:
    flows: dict[tuple[object, object], list[str]] = {}
    for e in events:
        if e.get("ph") in ("s", "f", "t"):
            flows.setdefault((e.get("cat"), e.get("id")), []).append(str(e["ph"]))
    return flows


def check_conformance(doc: dict[str, object], original: dict[str, object]) -> None:
    """The rules Perfetto's JSON importer applies to each event; flows: no export breaks a pair
    (the original's own orphans, launches recorded before the host side, are kept as they were)."""
    events = doc["traceEvents"]
    assert isinstance(events, list)
    for e in events:
        assert isinstance(e, dict)
        ph = e.get("ph")
        assert ph in PHASES, e
        assert "pid" in e, e
        if ph != "M":
            assert _num(e.get("ts")), e
            assert "tid" in e, e
        if ph == "X":
            assert _num(e.get("dur")) and e["dur"] >= 0, e
        if ph == "C":
            args = e.get("args")
            assert isinstance(args, dict) and args and all(_num(v) for v in args.values()), e
    before = _flow_halves(original["traceEvents"])  # type: ignore[arg-type]
    for key, phs in _flow_halves(events).items():
        assert sorted(phs) == ["f", "s"] or sorted(before[key]) == sorted(phs), key


def _load(path: Path) -> dict[str, object]:
    return json.loads(gzip.decompress(path.read_bytes()))


def _categories(path: Path) -> dict[str, float]:
    res = analyze_trace(load_trace(path))
    return {k: round(v.time_us, 3) for k, v in res.categories.items() if v.count}


@pytest.mark.parametrize("source", ["h100", "builtin"])
def test_export_conforms_round_trips_and_stays_small(source: str, small_run: Path, tmp_path: Path) -> None:
    src = fixture_path(H100) if source == "h100" else small_run / "context-000160.pt.trace.json.gz"
    out = tmp_path / "enriched.json.gz"
    st = enrich_file(src, out, measure_growth=True)
    print(
        f"{source}: +{st.added_events} events, {st.annotated_events} tagged, {st.bytes_in:,} -> {st.bytes_out:,} bytes "
        f"({100 * st.growth:+.1f}% vs input, {100 * st.enrichment_growth:+.2f}% vs re-encoded original)"
    )
    doc = _load(out)
    check_conformance(doc, _load(src))
    events = doc["traceEvents"]
    assert isinstance(events, list)
    ours = [e for e in events if e.get("pid") == TRACEKIT_PID]
    slices = [e for e in ours if e["ph"] == "X"]
    counters = {e["name"] for e in ours if e["ph"] == "C"}
    assert {"step time (ms)", "attention share"} <= counters
    tagged = [e for e in events if isinstance(e.get("args"), dict) and "tracekit.category" in e["args"]]
    assert len(events) == st.events_in + st.added_events  # everything the original had, plus ours
    assert len(tagged) == st.annotated_events
    if source == "builtin":
        assert "context tokens" in counters
        names = [s["name"] for s in slices]
        assert any(n.startswith("decode · step 1 · ctx 161 · ") for n in names)
        dec = next(s for s in slices if s["name"].startswith("decode · step 1"))
        assert dec["args"]["attention_ms"] > 0 and 0 < dec["args"]["attention_share"] < 1
        assert any(e["args"]["tracekit.category"] == "attention" for e in tagged)
    else:
        flash = [e for e in tagged if "flash_fwd" in e["name"]]
        assert flash and all(
            e["args"]["tracekit.category"] == "attention" and e["args"]["tracekit.rule"] == "flash-attention"
            for e in flash
        )
        assert st.enrichment_growth < 0.05
    # Same attribution from tracekit's own analyzer on the enriched file.
    assert _categories(out) == _categories(src)


@pytest.mark.slow  # HolisticTraceAnalysis loads the whole trace into pandas
def test_exported_trace_still_loads_in_hta(tmp_path: Path) -> None:
    hta = pytest.importorskip("hta.trace_analysis", reason="needs the [hta] extra")
    from tracekit.analysis.hta_bridge import _add_rank

    out = tmp_path / "enriched.json.gz"
    enrich_file(fixture_path(H100), out)
    d = tmp_path / "hta"
    d.mkdir()
    _add_rank(out, d / "rank-0.json.gz")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        analysis = hta.TraceAnalysis(trace_dir=str(d))
    df = analysis.t.get_trace(0)
    assert len(df) > 5000


def test_export_trims_to_a_window_and_steps(small_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "two.json.gz"
    st = enrich_file(small_run / "context-000160.pt.trace.json.gz", out, max_steps=2)
    doc = _load(out)
    check_conformance(doc, _load(small_run / "context-000160.pt.trace.json.gz"))
    assert st.events_out < st.events_in
    slices = [e for e in doc["traceEvents"] if e.get("pid") == TRACEKIT_PID and e["ph"] == "X"]
    assert len(slices) == 2
    out2 = tmp_path / "win.json.gz"
    enrich_file(fixture_path(H100), out2, window="ProfilerStep#6")
    check_conformance(_load(out2), _load(fixture_path(H100)))
    with pytest.raises(UserError, match="no annotation named 'nope'"):
        enrich_file(fixture_path(H100), tmp_path / "x.json.gz", window="nope")


def test_export_replaces_its_own_output_and_nothing_else(small_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.json.gz"
    r = run_cli("export", str(small_run), "--out", str(out))
    assert r.returncode == 0 and out.exists(), r.stderr
    assert "added" in r.stderr and "bytes" in r.stderr
    # Its own earlier output (the ledger's marker): replaced, like the report's.
    r = run_cli("export", str(small_run), "--out", str(out), "--max-steps", "2")
    assert r.returncode == 0, r.stderr
    # A file the user wrote, even a copy of an export: refused without --force.
    copy = tmp_path / "copy.json.gz"
    copy.write_bytes(out.read_bytes())
    r = run_cli("export", str(small_run), "--out", str(copy))
    assert r.returncode == 2 and "never overwrites" in r.stderr
    assert copy.read_bytes() == out.read_bytes()
    assert run_cli("export", str(small_run), "--out", str(copy), "--force").returncode == 0
