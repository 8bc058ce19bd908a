"""Loading: every source, both decode paths, and bad input that must never crash."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import H100, V100_DDP, fixture_path, run_cli
from tracekit.analysis.analyze import analyze_trace
from tracekit.errors import TraceFormatError
from tracekit.trace.build import build_trace
from tracekit.trace.model import Trace
from tracekit.trace.read import ReadOptions, load_trace
from tracekit.trace.read.lenient import lenient_events

# Every file through the chunked reader, in pieces small enough to cut many times.
TINY = ReadOptions(chunked_from=0, chunk_bytes=4096)


def test_fixtures_load_with_links() -> None:
    t = load_trace(fixture_path(H100))
    assert t.kind == "gpu" and t.device_names == ["NVIDIA H100 80GB HBM3"]
    win = next(a for a in t.gpu_annotations if a.name == "ProfilerStep#6")
    inside = [d for d in t.device if win.ts <= d.ts < win.ts + win.dur]
    # Every kernel of the profiled step links to its launch (those outside it ran before the CPU side was recorded).
    assert len(inside) > 1000 and all(t.link[d.index] >= 0 for d in inside)
    d = next(d for d in inside if "flash_fwd" in d.name)
    launcher = t.host[int(t.link[d.index])]
    assert launcher.cat == "cuda_runtime"
    # The launch sits under the SDPA operators, which sit under HF's attention function.
    chain = []
    n = int(t.link[d.index])
    while n >= 0:
        chain.append(t.host[n].name)
        n = int(t.parent[n])
    assert "aten::_scaled_dot_product_flash_attention" in chain
    assert any("Qwen2Attention" in c for c in chain)
    assert "ProfilerStep#6" in chain


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_list_form_and_plain_json(tmp_path: Path) -> None:
    doc = json.loads(gzip.decompress(fixture_path(H100).read_bytes()))
    plain = tmp_path / "list.json"
    plain.write_text(json.dumps(doc["traceEvents"]))
    t = load_trace(plain)
    assert len(t.device) == len(load_trace(fixture_path(H100)).device)


def _truncate(src: Path, dst: Path, frac: float) -> Path:
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * frac)])
    return dst


def test_truncated_gzip_is_a_clear_error_and_partial_salvages(tmp_path: Path) -> None:
    bad = _truncate(fixture_path(H100), tmp_path / "cut.json.gz", 0.5)
    with pytest.raises(TraceFormatError, match="truncated or corrupt gzip.*--partial"):
        load_trace(bad)
    t = load_trace(bad, partial=True)
    assert t.partial and t.host


def test_truncated_json_is_a_clear_error_and_partial_salvages(tmp_path: Path) -> None:
    text = gzip.decompress(fixture_path(H100).read_bytes())
    bad = tmp_path / "cut.json"
    bad.write_bytes(text[: len(text) * 2 // 3])
    with pytest.raises(TraceFormatError, match="invalid or truncated JSON"):
        load_trace(bad)
    t = load_trace(bad, partial=True)
    assert t.partial and len(t.host) > 1000


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"   \n", "is empty"),
        (b"hello", "is not JSON"),
        (b'{"foo": 1}', "not a Chrome trace"),
        (b'{"traceEvents": []}', "no usable trace events"),
        (b'{"traceEvents": [{"ph": "M", "name": "process_name"}]}', "no usable trace events"),
        (b"[1, 2, 3]", "no usable trace events"),
    ],
)
def test_foreign_files_name_the_problem(tmp_path: Path, content: bytes, problem: str) -> None:
    f = tmp_path / "x.json"
    f.write_bytes(content)
    with pytest.raises(TraceFormatError, match=problem):
        load_trace(f)


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="is a directory"):
        load_trace(tmp_path)
    with pytest.raises(TraceFormatError, match="no such file"):
        load_trace(tmp_path / "nope.json")


def test_events_with_missing_or_wrong_fields_are_skipped(tmp_path: Path) -> None:
    events = [
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 10, "dur": 5},
        {"ph": "X", "cat": "cpu_op", "name": "aten::add", "pid": 1, "tid": 1, "ts": "oops", "dur": 5},
        {"ph": "X", "cat": "cpu_op", "pid": 1, "tid": 1, "ts": 20, "dur": 2},
        {"cat": "cpu_op", "name": "no phase"},
        "not an object",
    ]
    f = tmp_path / "odd.json"
    f.write_text(json.dumps({"traceEvents": events}))
    t = load_trace(f)
    assert t.skipped_events == 3
    assert [h.name for h in t.host] == ["aten::mm", ""]


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_cli_reports_bad_files_in_one_line(tmp_path: Path) -> None:
    bad = _truncate(fixture_path(H100), tmp_path / "cut.json.gz", 0.3)
    r = run_cli("analyze", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "cut.json.gz" in r.stderr and "--partial" in r.stderr
    r = run_cli("analyze", str(bad), "--partial")
    assert r.returncode == 0, r.stderr
    assert "truncated" in r.stderr
    (tmp_path / "empty").mkdir()  # a directory is searched for traces; one with none is an error
    r = run_cli("analyze", str(tmp_path / "empty"))
    assert r.returncode == 2 and "no *.json or *.json.gz trace" in r.stderr


@pytest.mark.slow  # 54 MB of JSON, only in ../shared
def test_v100_ddp_fixture_loads_every_kernel_and_its_rank() -> None:
    t = load_trace(fixture_path(V100_DDP))
    assert len(t.device) == 22290
    assert t.rank == 1  # from distributedInfo


# --- property-based: malformed events never escape as anything but a TraceFormatError ---------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=8)
)
values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6
)
event = st.fixed_dictionaries(
    {},
    optional={
        "ph": st.sampled_from(["X", "B", "E", "i", "s", "f", "M", "C"]) | values,
        "cat": st.sampled_from(
            [
                "kernel",
                "cpu_op",
                "cuda_runtime",
                "user_annotation",
                "gpu_memcpy",
                "ac2g",
                "gpu_user_annotation",
                "python_function",
            ]
        )
        | values,
        "name": st.sampled_from(["aten::mm", "flash_fwd_kernel", "tracekit::decode[step=1,ctx=9]", "ProfilerStep#1"])
        | values,
        "pid": values,
        "tid": values,
        "ts": st.floats(0, 1e6) | values,
        "dur": st.floats(0, 1e4) | values,
        "id": values,
        "args": st.fixed_dictionaries({}, optional={"correlation": values, "External id": values, "stream": values})
        | values,
    },
)


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event | values, max_size=25))
def test_malformed_events_never_raise_unhandled(tmp_path_factory: pytest.TempPathFactory, events: list[object]) -> None:
    f = tmp_path_factory.mktemp("prop") / "t.json"
    f.write_text(json.dumps({"traceEvents": events}, allow_nan=True))
    try:
        t = load_trace(f)
    except TraceFormatError:
        return
    analyze_trace(t)


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@settings(max_examples=100, deadline=None)
@given(st.lists(event, max_size=25))
def test_event_conversion_and_analysis_are_total(events: list[dict[str, object]]) -> None:
    records = lenient_events(msgspec.json.encode(events))  # NaN is written as null
    assert len(records) == len(events)
    t = build_trace("mem", records)
    if t.host or t.device:
        res = analyze_trace(t)
        assert res.busy_us >= 0 and res.idle_us >= 0


def test_kernels_without_correlation_link_through_ac2g_flows() -> None:
    from tracekit.trace.model import Event, FlowEnd, FlowStart

    ev = [
        Event(cat="cpu_op", name="aten::mm", pid=1, tid=1, ts=0, dur=10),
        Event(cat="cuda_runtime", name="cudaLaunchKernel", pid=1, tid=1, ts=2, dur=1),
        FlowStart(cat="ac2g", id=7, pid=1, tid=1, ts=2),
        FlowEnd(cat="ac2g", id=7, pid=0, tid=7, ts=5),
        Event(cat="kernel", name="sgemm", pid=0, tid=7, ts=5, dur=3),
    ]
    t = build_trace("flows", ev)
    k = int(t.link[0])
    assert k >= 0 and t.host[k].name == "cudaLaunchKernel"
    assert t.host[int(t.parent[k])].name == "aten::mm"


def test_correlation_ids_read_the_same_in_every_chunk() -> None:
    """Integer ids from -1 up stay as they are, absent or null ones are -1, a string of digits is
    its integer, and other ids (strings, integers below -1) get codes below -1: the same in a
    chunk of plain integers (the one-pass column) as in a chunk that needs the slow path, so a
    launch and its kernel in different chunks still meet, and no real id meets another's code."""
    from tracekit.trace.build import TraceBuilder
    from tracekit.trace.model import SPANS_DECODER

    def launch(corr: object) -> dict[str, object]:
        e: dict[str, object] = {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1}
        e.update(ts=1, dur=1, args={} if corr is ... else {"correlation": corr})
        return e

    def kernel(corr: object) -> dict[str, object]:
        e: dict[str, object] = {"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 2, "dur": 1}
        e["args"] = {"correlation": corr}
        return e

    no_args: dict[str, object] = {**launch(...), "args": None}
    fast = SPANS_DECODER.decode(json.dumps([launch(12), launch(...), launch(5), launch(-1), launch("-1")]))
    negative = SPANS_DECODER.decode(json.dumps([launch(7), launch(-5), no_args]))
    slow = SPANS_DECODER.decode(
        json.dumps(
            [kernel("12"), kernel("abc"), kernel(None), kernel(5), kernel("abc"), kernel(-5), kernel("-5")]
            + [kernel(-1), kernel("-1"), {**kernel(1), "args": None}, kernel(" 12")]
        )
    )
    b = TraceBuilder("ids")
    for chunk in (fast, negative, slow):
        b.add(chunk)
    piece = b.piece()
    host = piece.host.corr.tolist()
    assert host[:6] == [12, -1, 5, -1, -1, 7] and host[7] == -1
    assert host[6] < -1  # -5 is coded: it must not meet a code
    got = piece.device.corr.tolist()
    assert got[0] == got[10] == 12 and got[2] == got[7] == got[8] == got[9] == -1 and got[3] == 5
    assert got[1] == got[4] < -1 and got[1] != host[6]  # one code for "abc", another for -5
    assert got[5] == got[6] == host[6]


def test_the_lenient_reader_reads_correlation_ids_as_the_typed_one(tmp_path: Path) -> None:
    """A document the typed decoder refuses (a boolean id) goes through the lenient reader, which
    must read ids as the typed one does: a string of digits meets its launch, other strings and
    odd values link nothing, and none of them stops the load ("²" passes str.isdigit but is no
    integer: it used to end the load with an internal error)."""
    launch = {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": 0, "dur": 1}
    events = [
        {**launch, "args": {"correlation": 12}},
        {**launch, "ts": 2, "args": {"correlation": 13}},
    ]
    for i, corr in enumerate([" 12", True, "\u00b2", "abc", 13.0]):
        e = {"ph": "X", "cat": "kernel", "name": f"k{i}", "pid": 0, "tid": 9, "ts": 10 + i, "dur": 1}
        events.append({**e, "args": {"correlation": corr}})
    f = tmp_path / "odd-ids.json"
    f.write_text(json.dumps({"traceEvents": events}))
    t = load_trace(f)
    linked = {t.device[i].name: int(t.link[i]) for i in range(len(t.device))}
    assert t.host[linked["k0"]].ts == 0 and t.host[linked["k4"]].ts == 2
    assert linked["k1"] == linked["k2"] == linked["k3"] == -1


# --- the chunked decoder (large traces) -------------------------------------------------------------


def test_chunked_path_equals_whole_decode() -> None:
    p = fixture_path(H100)
    chunked = analyze_trace(load_trace(p, options=TINY), "ProfilerStep#6")
    whole = analyze_trace(load_trace(p, options=ReadOptions(loader="whole")), "ProfilerStep#6")
    assert chunked.busy_us == whole.busy_us
    assert [(k.name, k.count, k.time_us) for k in chunked.kernels] == [
        (k.name, k.count, k.time_us) for k in whole.kernels
    ]


def test_chunked_cuts_only_between_events(tmp_path: Path) -> None:
    # Candidate cuts inside events: objects in lists inside args, and '}, {' inside names.
    events = []
    for i in range(400):
        events.append(
            {
                "ph": "X",
                "cat": "cpu_op",
                "name": f"op}}, {{weird{i}",
                "pid": 1,
                "tid": 1,
                "ts": i * 10,
                "dur": 5,
                "args": {"nested": [{"a": i}, {"b": [{"c": "}, {"}]}], "External id": i},
            }
        )
        events.append(
            {
                "ph": "X",
                "cat": "kernel",
                "name": "k<{lambda}, {x}>",
                "pid": 0,
                "tid": 7,
                "ts": i * 10 + 1,
                "dur": 2,
                "args": {"correlation": i},
            }
        )
    doc = {
        "schemaVersion": 1,
        "traceEvents": events,
        "deviceProperties": [{"name": "Test GPU"}],
        "INFO": ["a]", "b"],
        "distributedInfo": {"rank": 3},
    }
    for name, text in (
        ("doc.json", json.dumps(doc)),
        ("pretty.json.gz", json.dumps(doc, indent=2)),
        ("list.json", json.dumps(events)),
    ):
        f = tmp_path / name
        f.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
        t = load_trace(f, options=TINY)
        assert len(t.host) == 400 and len(t.device) == 400, name
        assert [h.name for h in t.host][:2] == ["op}, {weird0", "op}, {weird1"]
        if name != "list.json":
            assert t.device_names == ["Test GPU"] and t.rank == 3


def test_chunked_truncation_is_reported_and_salvaged(tmp_path: Path) -> None:
    text = gzip.decompress(fixture_path(H100).read_bytes())
    bad = tmp_path / "cut.json"
    bad.write_bytes(text[: len(text) // 2])
    with pytest.raises(TraceFormatError, match="truncated.*--partial"):
        load_trace(bad, options=TINY)
    t = load_trace(bad, partial=True, options=TINY)
    assert t.partial and len(t.host) > 1000


def test_the_model_is_columns_with_one_table_of_strings() -> None:
    from tests.helpers import V100_RESNET

    t = load_trace(fixture_path(V100_RESNET))
    cols = t.spans
    assert len(cols) == len(t.host) > 10_000
    assert {c.dtype.kind for c in (cols.name, cols.cat, cols.thread, cols.corr, cols.origin)} == {"i"}
    # Each distinct string once: names and categories are codes into one table.
    assert len(t.strings) == len(set(t.strings)) < 1000
    assert t.host[0].name == t.strings[int(cols.name[0])]
    assert t.host[-1].ts == t.host[len(cols) - 1].ts
    assert [h.name for h in t.host[:2]] == [t.host[0].name, t.host[1].name]
    with pytest.raises(IndexError):
        t.host[len(cols)]
    # Host spans are sorted by thread and start, parents before children.
    assert (np.diff(cols.ts[cols.thread == cols.thread[0]]) >= 0).all()
    assert (t.parent < np.arange(len(cols))).all()


def test_phases_outside_the_typed_table_fall_back_to_lenient_decoding(tmp_path: Path) -> None:
    events = [
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 10, "dur": 5},
        {"ph": "Z", "cat": "cpu_op", "name": "a phase nobody writes", "pid": 1, "tid": 1, "ts": 11},
        {"ph": "X", "cat": "cpu_op", "name": "aten::add", "pid": 1, "tid": 1, "ts": 11, "dur": 2},
    ]
    f = tmp_path / "odd-phase.json"
    f.write_text(json.dumps({"traceEvents": events}))
    t = load_trace(f)
    assert [h.name for h in t.host] == ["aten::mm", "aten::add"]
    assert t.skipped_events == 0 and t.parent.tolist() == [-1, 0]


def _flow_linked_trace(n: int) -> dict[str, object]:
    """Launches and kernels tied only by ac2g flows (no correlation ids), as some producers write."""
    events: list[dict[str, object]] = []
    for i in range(n):
        t = 100.0 * i
        events += [
            {"ph": "X", "cat": "cpu_op", "name": f"aten::op{i % 3}", "pid": 1, "tid": 1, "ts": t, "dur": 50},
            {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": t + 1, "dur": 5},
            {"ph": "s", "cat": "ac2g", "name": "ac2g", "id": i, "pid": 1, "tid": 1, "ts": t + 1},
            {"ph": "f", "cat": "ac2g", "name": "ac2g", "id": i, "pid": 0, "tid": 7, "ts": t + 20, "bp": "e"},
            {"ph": "X", "cat": "kernel", "name": "sgemm", "pid": 0, "tid": 7, "ts": t + 20, "dur": 10},
        ]
    return {"traceEvents": events}


def test_chunked_path_reads_flows_again_only_when_ids_are_missing(tmp_path: Path) -> None:
    f = tmp_path / "flows.json"
    f.write_text(json.dumps(_flow_linked_trace(300)))
    t = load_trace(f, options=TINY)
    links = t.link.tolist()
    assert len(t.device) == 300 and all(n >= 0 for n in links)
    assert {t.host[int(t.parent[n])].name for n in links} == {"aten::op0", "aten::op1", "aten::op2"}
    # The same file with correlation ids links without the flows (they are not even decoded).
    doc = _flow_linked_trace(300)
    evs = doc["traceEvents"]
    assert isinstance(evs, list)
    k = 0
    for e in evs:
        if e["cat"] in ("cuda_runtime", "kernel"):
            e["args"] = {"correlation": k // 2}
            k += 1
    g = tmp_path / "ids.json"
    g.write_text(json.dumps(doc))
    u = load_trace(g, options=TINY)
    assert u.link.tolist() == links


def test_without_isal_the_standard_gzip_reads_the_same() -> None:
    from tracekit.trace.read.text import open_gz

    p = fixture_path(H100)
    with open_gz(p, isal=False) as fh:
        assert type(fh) is gzip.GzipFile  # the standard library's, not ISA-L's subclass
    fast = analyze_trace(load_trace(p, options=TINY), "ProfilerStep#6").to_json()
    for loader in ("whole", "chunked"):
        slow = ReadOptions(loader=loader, chunk_bytes=4096, isal=False)
        assert analyze_trace(load_trace(p, options=slow), "ProfilerStep#6").to_json() == fast, loader


def _parallel(p: Path, options: ReadOptions, workers: int) -> Trace:
    """``p`` read by the parallel reader alone (never handed to the serial one), then completed as
    every chunked load is."""
    from tracekit.trace.read import chunked, parallel

    gz = p.read_bytes()[:2] == b"\x1f\x8b"
    spans = parallel.read_spans(p, gz, workers, 1 << 40, options)
    assert spans is not None, "the parallel reader must have built the trace, not handed it back"
    trace, damage = chunked.complete(spans, p, gz, 1 << 40, options)
    assert damage is None
    return trace


@pytest.mark.slow  # V100_DDP is only in ../shared
def test_parallel_load_equals_the_serial_one() -> None:
    """The fixture decoded and built by worker processes, in small pieces so there are many, gives
    exactly the trace the serial reader gives; so does a load that picks the parallel reader."""
    p = fixture_path(V100_DDP)
    serial = load_trace(p, options=ReadOptions(workers=1))
    options = ReadOptions(parallel_from=0, chunked_from=0, piece_bytes=1 << 20, workers=3)
    _assert_same_trace(serial, _parallel(p, options, 3))
    _assert_same_trace(serial, load_trace(p, options=options))


def _assert_same_trace(serial: Trace, par: Trace) -> None:
    for part in ("spans", "kernels"):
        a, b = getattr(serial, part), getattr(par, part)
        for f in ("ts", "dur", "origin"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), (part, f)
        for f in ("name", "cat"):
            assert [serial.strings[i] for i in getattr(a, f)] == [par.strings[i] for i in getattr(b, f)], (part, f)
        assert [serial.threads[i] for i in a.thread] == [par.threads[i] for i in b.thread], part
    assert np.array_equal(serial.parent, par.parent) and np.array_equal(serial.link, par.link)
    assert (serial.device_names, serial.rank, serial.skipped_events) == (par.device_names, par.rank, par.skipped_events)


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_parallel_pieces_fit_the_shared_slots_but_one_huge_event(tmp_path: Path) -> None:
    """Pieces go to the workers through shared memory slots of twice ``piece_bytes``; one longer
    than a slot (a single event of megabytes) must go through the pool's pipe instead, the pieces
    after it are of the usual size again (the reader's buffer shrinks back), and the parallel
    reader's trace is the serial one."""
    import io

    from tracekit.trace.read.parallel import _Slots
    from tracekit.trace.read.pieces import ChunkedReader

    events = []
    for i in range(20000):
        ts = 1000.0 + 10 * i
        events.append({"ph": "X", "cat": "cpu_op", "name": f"aten::op{i % 7}", "pid": 1, "tid": 1, "ts": ts, "dur": 5})
        events.append({"ph": "X", "cat": "kernel", "name": f"k{i % 5}", "pid": 0, "tid": 7, "ts": ts + 1, "dur": 3})
        if i == 1000:
            events.append({"ph": "X", "cat": "cpu_op", "name": "huge", "pid": 1, "tid": 1, "ts": ts + 6, "dur": 1,
                           "args": {"Input dims": "x" * (3 << 20)}})  # fmt: skip
    p = tmp_path / "huge-event.json"
    p.write_text(json.dumps({"traceEvents": events}))
    options = ReadOptions(chunked_from=0, parallel_from=0, piece_bytes=64 << 10, workers=2)
    reader = ChunkedReader(io.BytesIO(p.read_bytes()), chunk_size=options.piece_bytes)
    pieces = [t for t in reader.texts() if isinstance(t, bytes)]
    slot = 2 * options.piece_bytes + 2  # as the parallel reader sizes its slots
    too_long = [i for i, t in enumerate(pieces) if len(t) > slot]
    assert len(too_long) == 1 and len(pieces) >= 10, [len(t) for t in pieces]
    slots = _Slots(1, slot)
    assert slots.put(pieces[too_long[0]]) is None and slots.put(pieces[-1]) == 0
    _assert_same_trace(load_trace(p, options=ReadOptions(workers=1)), _parallel(p, options, 2))


@pytest.mark.parametrize("loader", ["auto", "whole", "chunked"])
def test_a_cut_gzip_is_named_as_cut_whatever_its_prefix_looks_like(tmp_path: Path, loader: str) -> None:
    """The prefix of a gzip cut short may already show a wrong shape (here a traceEvents that is no
    list): the file is reported as a broken gzip, the one thing certain about it; asked for its
    events (--partial), the shape is what stands in the way."""
    body = b'{"traceEvents": 5, "x": "' + b"a" * 200_000 + b'"}'
    z = gzip.compress(body)
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(z[: len(z) // 2])
    with pytest.raises(TraceFormatError) as err:
        load_trace(cut, options=ReadOptions(loader=loader))  # type: ignore[arg-type]
    assert err.value.kind == "gzip" and err.value.has_prefix and "--partial" in err.value.advice
    with pytest.raises(TraceFormatError, match="traceEvents is not a list") as err:
        load_trace(cut, partial=True, options=ReadOptions(loader=loader))  # type: ignore[arg-type]
    assert err.value.kind == "not-a-trace"
