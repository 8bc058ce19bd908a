"""Serve one trace to ui.perfetto.dev from 127.0.0.1, the way Perfetto's own scripts do.

The UI's content-security policy lets it fetch from http://127.0.0.1:9001 only, so that is the
default port; the server answers CORS for https://ui.perfetto.dev and serves exactly one path,
``/<token>/<name>``, where the token is random per run: a page on another site cannot guess it,
so its no-cors GET neither reads the trace nor counts as the UI's fetch. It serves until Ctrl-C
(a reload of the Perfetto tab fetches again), or until the first complete fetch (``once``).

Hostile clients: a request with a ``Host`` other than ``127.0.0.1`` or ``localhost`` (with this
port), or with two, is refused, which defeats DNS rebinding (a page on evil.example whose name now
points at 127.0.0.1); so is a request a browser marks as a cross-site no-cors fetch
(``Sec-Fetch-Mode``). Each request's head (request line and headers) must arrive within
``HEAD_S`` seconds in all, however it trickles in, and a client that stalls costs one bounded
thread for at most ``IDLE_S`` seconds; at most ``MAX_CLIENTS`` connections are served at once, and
when all are taken a newcomer displaces the connection that has spent longest on its request head
(a slowloris holds them all, and used to lock out every real client). The file counts as fetched
only once every byte reached the client: a download aborted half-way does not count.
"""

from __future__ import annotations

import errno
import http.server
import secrets
import socket
import struct
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tracekit.errors import UserError
from tracekit.files import regular_file
from tracekit.perfetto import DEFAULT_PORT

PERFETTO_ORIGIN = "https://ui.perfetto.dev"
HOST = "127.0.0.1"  # loopback only, never configurable
IDLE_S = 10.0  # a connection that sends nothing for this long is closed
HEAD_S = 10.0  # a request's line and headers must all arrive within this long
MAX_CLIENTS = 32
DELIVERY_S = 30.0  # how long to wait for the client to take the last bytes of the file
SETTLE_S = 0.2  # after the last byte is acknowledged, how long a reset would still count as an abort


def perfetto_url(port: int, name: str, token: str = "") -> str:
    route = f"{token}/{name}" if token else name
    return f"{PERFETTO_ORIGIN}/#!/?url=http://{HOST}:{port}/{urllib.parse.quote(route)}"


def _unsent(sock: socket.socket) -> int:
    """Bytes the kernel still holds for the peer (not yet acknowledged); 0 where unknown (TIOCOUTQ
    is Linux's; fcntl and termios exist only on Unix)."""
    try:
        import fcntl
        import termios

        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except (ImportError, OSError, AttributeError):
        return 0


def delivered(sock: socket.socket, idle_s: float) -> bool:
    """After the body is written: whether the client took all of it. It did once the kernel has
    no unacknowledged bytes left and the client neither reset the connection nor closed it with
    data unread (which resets it) for ``SETTLE_S``; a next request or a clean close also says so."""
    deadline = time.monotonic() + DELIVERY_S
    settled: float | None = None
    try:
        while time.monotonic() < deadline:
            sock.settimeout(0.05)
            try:
                sock.recv(1, socket.MSG_PEEK)
                return True  # a clean close (b"") or the next request: everything was read
            except TimeoutError:
                pass
            except OSError:
                return False  # reset: the client went away before reading everything
            if _unsent(sock):
                settled = None
                continue
            settled = settled or time.monotonic() + SETTLE_S
            if time.monotonic() >= settled:
                return True
        return False
    finally:
        try:
            sock.settimeout(idle_s)
        except OSError:
            pass


class _Handler(http.server.BaseHTTPRequestHandler):
    server: TraceServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_s)

    def handle_one_request(self) -> None:
        """One request, its head under a deadline for the whole of it (not per line: a header
        line every 2 s kept a per-read timeout from ever firing)."""
        self.server.heads.begin(self.connection)  # the server's loop ends it after head_s
        try:
            super().handle_one_request()
        finally:
            self.server.heads.end(self.connection)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.server.heads.end(self.connection)  # the head is in: the deadline no longer applies
        return ok

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", PERFETTO_ORIGIN)
        self.send_header("Vary", "Origin")

    def _refuse(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self._cors()
        if code == 405:
            self.send_header("Allow", "GET, HEAD, OPTIONS")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _host_ok(self) -> bool:
        """Only our own names, once: a DNS-rebinding page sends its own host name here."""
        if len(self.headers.get_all("Host") or []) != 1:
            return False
        host = (self.headers.get("Host") or "").strip().lower()
        port = str(self.server.port)
        return host in (HOST, "localhost", f"{HOST}:{port}", f"localhost:{port}")

    def _is_ours(self) -> bool:
        path = urllib.parse.urlsplit(self.path).path
        return secrets.compare_digest(urllib.parse.unquote(path), "/" + self.server.route)

    def _checked(self) -> bool:
        if not self._host_ok():
            self._refuse(403, "forbidden: this server answers to 127.0.0.1 and localhost only\n")
            return False
        if self.headers.get("Sec-Fetch-Mode", "").lower() == "no-cors" and self.headers.get(
            "Sec-Fetch-Site", ""
        ).lower() not in ("", "same-origin", "none"):
            self._refuse(403, "forbidden: a cross-site no-cors request\n")
            return False
        return True

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server naming
        if not self._checked():
            return
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._send(body=True)

    def _send(self, *, body: bool) -> None:
        if not self._checked():
            return
        if not self._is_ours():
            self._refuse(404, "not found: this server serves one trace file only\n")
            return
        data = self.server.data
        self.send_response(200)
        self._cors()
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            # In pieces: the idle timeout then bounds each piece's wait, not the whole download.
            for at in range(0, len(data), 1 << 20):
                self.wfile.write(data[at : at + (1 << 20)])
            self.wfile.flush()
            if delivered(self.connection, self.server.idle_s):
                self.server.fetches += 1
                self.server.fetched.set()
            else:
                self.close_connection = True

    def _other(self) -> None:
        if self._checked():
            self._refuse(405, "method not allowed\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = _other  # noqa: N815


class _Heads:
    """The connections still reading a request head, and since when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: dict[socket.socket, float] = {}

    def begin(self, sock: socket.socket) -> None:
        with self.lock:
            self.since[sock] = time.monotonic()

    def end(self, sock: socket.socket) -> None:
        with self.lock:
            self.since.pop(sock, None)

    def expire(self, sock: socket.socket) -> None:
        """End a connection whose head is still incomplete (its thread then finishes)."""
        with self.lock:
            if sock not in self.since:
                return
            del self.since[sock]
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def overdue(self, limit_s: float) -> list[socket.socket]:
        cutoff = time.monotonic() - limit_s
        with self.lock:
            return [s for s, t in self.since.items() if t < cutoff]

    def oldest(self) -> socket.socket | None:
        with self.lock:
            return min(self.since, key=self.since.__getitem__) if self.since else None


class TraceServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        file: Path,
        port: int,
        *,
        idle_s: float = IDLE_S,
        head_s: float = HEAD_S,
        data: bytes | None = None,
        name: str | None = None,
    ) -> None:
        """Serve ``file`` (or ``data``, named ``name``, e.g. a trace enriched in memory)."""
        self.idle_s, self.head_s = idle_s, head_s
        if not 0 <= port <= 65535:
            raise UserError(f"--port {port}: a port is a number from 1 to 65535 (0: any free one)")
        self.file = Path(file)
        if data is None:
            regular_file(self.file, "trace file")
            data = self.file.read_bytes()
        self.data = data
        self.name = name or self.file.name
        self.token = secrets.token_urlsafe(12)
        self.route = f"{self.token}/{self.name}"
        self.heads = _Heads()
        self.fetches = 0
        self.fetched = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        try:
            super().__init__((HOST, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {port} on {HOST} is in use (Perfetto's 'trace_processor --httpd' or another "
                    f"'tracekit open' uses it too); stop that process (find it with 'lsof -i :{port}') and retry"
                ) from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise UserError(
                    f"port {port} on {HOST}: permission denied (ports below 1024 need privileges); "
                    f"use --port {DEFAULT_PORT}, the port the Perfetto UI fetches from"
                ) from None
            raise UserError(f"cannot listen on {HOST}:{port} ({exc.strerror or exc})") from None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return perfetto_url(self.port, self.name, self.token)

    def process_request(self, request: Any, client_address: Any) -> None:
        """At most ``MAX_CLIENTS`` connections at once: when all are taken, the one longest on
        its request head makes way; with none to displace, the newcomer is closed."""
        if not self._slots.acquire(blocking=False):
            victim = self.heads.oldest()
            if victim is not None:
                self.heads.expire(victim)
            if not self._slots.acquire(timeout=1.0):
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def service_actions(self) -> None:
        """Between polls of the accept loop: end the connections whose request head is overdue."""
        for sock in self.heads.overdue(self.head_s):
            self.heads.expire(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets, stalls or sends garbage ends its own connection, silently."""
        return

    def serve_until_fetched(self, timeout: float | None = None) -> bool:
        """Serve until the file has been fetched once (True) or ``timeout`` seconds pass (False)."""
        return self.serve(timeout, once=True) > 0

    def serve(self, timeout: float | None = None, *, once: bool = False) -> int:
        """Serve until ``timeout`` seconds pass (None: until Ctrl-C), or the first complete fetch
        when ``once``; return how many complete fetches there were."""
        t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                # In short waits: Ctrl-C reaches the main thread at once.
                if self.fetched.wait(0.5 if left is None else min(0.5, left)) and once:
                    break
        finally:
            self.shutdown()
            self.server_close()
        return self.fetches
