"""Serve one trace file to ui.perfetto.dev from 127.0.0.1, the way Perfetto's own scripts do.

The UI's content-security policy lets it fetch from http://127.0.0.1:9001 only, so that is the
default port; the server answers CORS for https://ui.perfetto.dev, serves exactly one path, and
stops once the UI has fetched the whole file (or on Ctrl-C).
"""

from __future__ import annotations

import errno
import http.server
import threading
import urllib.parse
from pathlib import Path

from tracekit.errors import UserError

PERFETTO_ORIGIN = "https://ui.perfetto.dev"
HOST = "127.0.0.1"  # loopback only, never configurable


def perfetto_url(port: int, name: str) -> str:
    return f"{PERFETTO_ORIGIN}/#!/?url=http://{HOST}:{port}/{urllib.parse.quote(name)}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: TraceServer
    protocol_version = "HTTP/1.1"

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

    def _is_ours(self) -> bool:
        path = urllib.parse.urlsplit(self.path).path
        return urllib.parse.unquote(path) == "/" + self.server.file.name

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server naming
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
            self.wfile.write(data)
            self.wfile.flush()
            self.server.fetched.set()

    def _other(self) -> None:
        self._refuse(405, "method not allowed\n")

    do_POST = do_PUT = do_DELETE = do_PATCH = _other  # noqa: N815


class TraceServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, file: Path, port: int) -> None:
        self.file = Path(file)
        self.data = self.file.read_bytes()
        self.fetched = threading.Event()
        try:
            super().__init__((HOST, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {port} on {HOST} is in use (Perfetto's 'trace_processor --httpd' or another "
                    f"'tracekit open' uses it too); stop that process (find it with 'lsof -i :{port}') and retry"
                ) from None
            raise

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return perfetto_url(self.port, self.file.name)

    def serve_until_fetched(self, timeout: float | None = None) -> bool:
        """Serve until the file has been fetched once (True) or ``timeout`` seconds pass (False)."""
        t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        try:
            done = self.fetched.wait(timeout)
        finally:
            self.shutdown()
            self.server_close()
        return done
