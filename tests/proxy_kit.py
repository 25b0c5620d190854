"""``RecordingProxy``: a reverse proxy between a client under test and the emulator that
records which actions were called (the emulator's truth counts requests per service only).

It forwards every request byte for byte (Host header included, so signatures still
verify) and can spoil chosen answers: the first request of an action answered with a
head and a broken body (``drop_once``), or rows left out of every answer of an action
(``drop_rows``). Used by the pipeline tests and the plan tests.

``PrefectApiProxy``: the same in front of a Prefect server, recording ``(method, path)``
(the client test counts Block reads there), with the events WebSocket tunnelled.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from http_kit import LoopbackHttpServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class _LocalProxy:
    """A threaded HTTP server on a free loopback port, used as a context manager, and the
    requests its handler recorded (``snapshot``)."""

    requests: list
    _lock: threading.Lock

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = LoopbackHttpServer(handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list:
        with self._lock:
            return list(self.requests)


class RecordingProxy(_LocalProxy):
    """Forward ``127.0.0.1:<port>`` to ``upstream`` byte for byte (Host header included,
    so signatures still verify) and record ``(service, method, path, query, action)``: the
    emulator's truth counts requests per service only."""

    def __init__(self, upstream: str, service: str, drop_once: tuple[str, ...] = (),
                 drop_rows: dict[str, tuple[str, str, str]] | None = None) -> None:
        self.upstream, self.service = upstream, service
        # action -> (list key, item key, value): every answer of that action loses the list
        # items whose key has that value, TotalCount untouched (a row skipped while paging)
        self.drop_rows = dict(drop_rows or {})
        # actions whose FIRST request is not forwarded: the answer's head promises a body
        # and the connection closes (as the emulator's dropped-connection fault)
        self.drop_once = set(drop_once)
        self.requests: list[tuple[str, str, str, str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                split = urlsplit(self.path)
                # ACS3 requests (the ACR SDK) name it in a header; RPC ones in the query or the form body
                action = self.headers.get("x-acs-action") or parse_qs(split.query).get("Action", [""])[0]
                if not action and body and b"Action=" in body:
                    action = parse_qs(body.decode("latin-1")).get("Action", [""])[0]
                with proxy._lock:
                    proxy.requests.append((proxy.service, self.command, split.path, split.query, action))
                    drop = action in proxy.drop_once
                    proxy.drop_once.discard(action)
                if drop:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "512")
                    self.end_headers()
                    self.wfile.write(b'{"Req')
                    self.wfile.flush()
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    if action in proxy.drop_rows and response.status == 200:
                        list_key, item_key, value = proxy.drop_rows[action]
                        body = json.loads(data)
                        body[list_key] = [item for item in body.get(list_key) or [] if item.get(item_key) != value]
                        data = json.dumps(body).encode()
                    # send_response would add this machine's Date and a Server header: the
                    # emulator's own (its Date is on the emulated clock) must pass alone
                    self.log_request(response.status)
                    self.send_response_only(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self._serve(Handler)


class PrefectApiProxy(_LocalProxy):
    """Forward ``127.0.0.1:<port>`` to the Prefect server and record ``(method, path)`` of
    each HTTP request; a WebSocket upgrade (the events stream) is tunnelled byte for byte."""

    def __init__(self, upstream: str, busy: tuple[str, str, int] | None = None) -> None:
        """``busy=(method, path, n)``: the first ``n`` such requests are answered as Prefect's
        server answers when its SQLite database is locked (503 "Service Unavailable"), with
        ``Retry-After: 0`` so that the client's retries cost no waiting."""
        self.upstream = upstream
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.busy_left = {(busy[0], busy[1]): busy[2]} if busy else {}
        self.answered_busy = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _tunnel(self) -> None:
                host, port = proxy.upstream.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                lines = [self.requestline, *(f"{key}: {value}" for key, value in self.headers.items())]
                upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                sockets = [self.connection, upstream]
                try:
                    while True:
                        readable, _, _ = select.select(sockets, [], [], 30)
                        if not readable:
                            continue
                        for source in readable:
                            data = source.recv(65536)
                            if not data:
                                return
                            (upstream if source is self.connection else self.connection).sendall(data)
                except OSError:
                    return
                finally:
                    upstream.close()
                    self.close_connection = True

            def _forward(self) -> None:
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    return self._tunnel()
                route = (self.command, self.path.split("?", 1)[0])
                with proxy._lock:
                    proxy.requests.append(route)
                    busy = proxy.busy_left.get(route, 0) > 0
                    if busy:
                        proxy.busy_left[route] -= 1
                        proxy.answered_busy += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if busy:
                    data = b'{"exception_message": "Service Unavailable"}'
                    self.send_response_only(503, "Service Unavailable")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "upgrade")}
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response_only(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self._serve(Handler)
