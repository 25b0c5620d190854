"""``LoopbackHttpServer``: the tests' own threaded HTTP servers (canned answers, recording
proxies, webhook receivers) on a loopback port, free unless one is given.

http.server listens with a backlog of 5. A burst of concurrent calls (the product starts
up to ``qps`` of them at once) that arrives while the accept thread waits for the CPU
overflows it: the kernel drops the extra SYNs and the clients send them again only after
1 s, then 3 s — a ``ConnectTimeout`` on a busy machine (seen in a full-suite run). The
emulator listens with a backlog of 1024; so do these.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHttpServer(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0):
        super().__init__(("127.0.0.1", port), handler)
