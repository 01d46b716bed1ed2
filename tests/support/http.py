"""A real HTTP server on loopback whose answer the test changes while a client polls it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    """Answers every GET with ``status``, ``headers`` and ``body`` (after ``delay`` seconds); counts ``hits``."""

    def __init__(self, status: int = 200, body: str = ""):
        self.status = status
        self.body = body
        self.headers: dict[str, str] = {}
        self.delay = 0.0
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                time.sleep(outer.delay)
                payload = outer.body.encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in outer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, code: int, **body) -> None:
        self.status, self.body = code, json.dumps(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
