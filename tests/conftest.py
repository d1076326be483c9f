"""Shared fixtures.

``http_server``: a loopback HTTP server (127.0.0.1, a free port) serving a temporary folder,
with ``Range`` support (206 / 416 answers like a real file server), a log of the requests
it saw, and fault injection: ``drop_once(name, after)`` closes the connection after
``after`` body bytes of the next request for ``name``.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class LoopbackServer:
    """Handle on the running server: where files go, their URLs, requests seen, faults."""

    root: Path
    port: int
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    drops: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False

    def url(self, name: str) -> str:
        """The URL of ``root/name``."""
        return f"http://127.0.0.1:{self.port}/{name}"

    def add(self, name: str, data: bytes) -> str:
        """Write ``data`` as ``root/name`` and return its URL."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self.url(name)

    def drop_once(self, name: str, after: int) -> None:
        """Cut the next response for ``name`` after ``after`` body bytes."""
        self.drops[name] = after


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = unquote(urlsplit(self.path).path).lstrip("/")
            server.requests.append((name, self.headers.get("Range")))
            path = (server.root / name).resolve()
            if not path.is_relative_to(server.root.resolve()) or not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start, end, status = 0, len(data) - 1, 200
            m = _RANGE.match(self.headers.get("Range") or "")
            if m and not server.ignore_range:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else len(data) - 1
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start : end + 1]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            cut = server.drops.pop(name, None)
            if cut is None:
                self.wfile.write(body)
                return
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    return Handler


@pytest.fixture
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    """A loopback HTTP server with Range support serving a fresh temporary folder."""
    root = tmp_path_factory.mktemp("http")
    state = LoopbackServer(root=root, port=0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        shutil.rmtree(root, ignore_errors=True)
