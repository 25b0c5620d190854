"""A tiny real HTTP server (stdlib) that answers from a script of canned responses.

Used to provoke the real SDK stack into each failure mode (error bodies, 5xx, throttling,
dropped connections, slow answers) without the emulator, and to see what it raises.
Each scripted step is one of:

* ``(status, headers, body)`` — answer with that (body: bytes or str);
* ``"drop"`` — close the connection without answering;
* ``"cut"`` — promise a Content-Length and close after a few bytes;
* ``("slow", seconds, step)`` — sleep, then play ``step``.

The last step repeats when the script runs out. Every request is recorded.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

from http_kit import LoopbackHttpServer


class CannedServer:
    def __init__(self, script=None):
        self.script = list(script or [(200, {"Content-Type": "application/json"}, "{}")])
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append(
                        {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body,
                         "t": time.monotonic()}
                    )
                    step = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                try:
                    self._play(step)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    self.close_connection = True

            def _play(self, step):
                if isinstance(step, tuple) and step and step[0] == "slow":
                    time.sleep(step[1])
                    step = step[2]
                if step == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if step == "cut":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "500")
                    self.end_headers()
                    self.wfile.write(b'{"Req')
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                status, headers, body = step
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(data)) if self.command != "HEAD" else "0")
                self.end_headers()
                if self.command != "HEAD" and data:
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.httpd = LoopbackHttpServer(Handler)
        self.port = self.httpd.server_address[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def set_script(self, script):
        with self._lock:
            self.script = list(script)
            self.requests.clear()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
