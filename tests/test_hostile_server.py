"""Bad input, faults and attack: the loopback server that hands a trace to Perfetto. It answers
only to its own names, stays bounded and silent under resets and half-open connections, counts a
download as fetched only when every byte arrived, and refuses ports it cannot use in one line."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.hostile import (
    as_nobody,
    doc,
    events,
    one_line_error,
    tk,
    write,
)
from tracekit.perfetto.serve import MAX_CLIENTS, TraceServer

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
        reply = _ask(served.port, f"{method} /{served.route} HTTP/1.1\r\n{header}Connection: close\r\n\r\n".encode())
        ok = 204 if method == "OPTIONS" else 200
        assert reply.startswith(f"HTTP/1.1 {status if status != 200 else ok} ".encode()), (method, reply[:80])
        assert served.fetched.is_set() == (status == 200 and method != "HEAD")


def _reset(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    s.close()


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_resets_and_half_open_connections_print_nothing_and_stay_bounded(
    served: TraceServer, capfd: pytest.CaptureFixture[str]
) -> None:
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(200)]
    time.sleep(0.3)
    assert threading.active_count() <= before + MAX_CLIENTS + 2
    for s in idle:
        s.sendall(f"GET /{served.route} HTTP/1.1\r\nHo".encode())  # half a request, then a reset
        _reset(s)
    for _ in range(50):  # a download reset after its first bytes
        s = socket.create_connection(("127.0.0.1", served.port), timeout=10)
        s.sendall(f"GET /{served.route} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n\r\n".encode())
        s.recv(100)
        _reset(s)
    time.sleep(0.8)  # past idle_s: every one of them is gone
    assert threading.active_count() <= before + 2 and not served.fetched.is_set()
    reply = _ask(served.port, f"GET /{served.route} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(served.data) and served.fetched.is_set()
    out, err = capfd.readouterr()
    assert out == "" and err == "", err


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_an_aborted_download_neither_counts_nor_stops(tmp_path: Path) -> None:
    evs = events(40)
    evs += [
        {"ph": "i", "name": "pad", "pid": 1, "tid": 1, "ts": 5.1e12, "args": {"x": os.urandom(4096).hex()}}
        for _ in range(1500)
    ]  # about 6 MB of gzip that does not compress: more than the socket buffers hold
    f = write(tmp_path / "t.json.gz", doc(evs))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "tracekit", "open", str(f), "--no-browser", f"--port={port}", "--timeout=2"]
    # The route holds the run's random token: read from the URL the command prints.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    route = line.strip().split(f"127.0.0.1:{port}/", 1)[1]
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET /{route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    s.recv(1024)
    _reset(s)
    time.sleep(0.5)
    assert proc.poll() is None  # still serving
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "timed out after 2 s and nothing fetched" in err and "Traceback" not in err, err


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
