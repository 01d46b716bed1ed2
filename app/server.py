"""The HTTP server, request logging, and a graceful stop.

Shutdown order: stop the accept loop, close the listening socket (new connections are refused instead of
queueing in the backlog), wait for in-flight requests up to ``APP_DRAIN_SECONDS``, exit 0.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .config import Config
from .db import Database
from .logs import close_logging, request_id_from, setup_logging
from .routes import route_table
from .web import HttpError, Request, Response, Router, RouteTable, is_digits, json_response

MAX_BODY_BYTES = 64 * 1024


class App:
    """What handlers need: settings, the database, the logger, the router and the start time."""

    def __init__(self, config: Config, log: logging.Logger, routes: RouteTable | None = None) -> None:
        self.config = config
        self.log = log
        self.db = Database(config.db_path)
        self.router = Router(routes if routes is not None else route_table(config))
        self.started = time.monotonic()
        # Without a configured key (allowed outside production) sessions last only as long as this process.
        self.secret = (config.secret_key.reveal() if config.secret_key else secrets.token_hex(32)).encode()

    def prepare(self) -> None:
        try:
            self.db.initialize()
        except Exception as exc:  # keep serving so /health/ready can say exactly what is wrong
            self.log.error("database unusable at start", extra={"db_path": self.config.db_path, "error": str(exc)})

    def handle(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler, params, allowed = self.router.match(method, request.path)
        if handler is None:
            if allowed:
                raise HttpError(405, f"method {request.method} not allowed on {request.path}",
                                headers={"Allow": ", ".join(allowed)}, allowed=allowed)
            raise HttpError(404, "not found", path=request.path)
        request.params = params
        return handler(self, request)


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "deploy-demo"
    # HTTP/1.0 closes each connection after one answer: no idle keep-alive sockets to wait for when draining.
    protocol_version = "HTTP/1.0"
    # A client that connects and says nothing must not hold a worker (and the drain) forever.
    timeout = 30

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def _dispatch(self) -> None:
        started = time.perf_counter()
        app = self.server.app
        request_id = request_id_from(self.headers.get("X-Request-ID"))
        target = urlsplit(self.path)
        path = target.path or "/"
        try:
            body = self._read_body()
            request = Request(self.command, path, parse_qs(target.query, keep_blank_values=True),
                              self.headers, body, request_id)
            response = app.handle(request)
        except HttpError as exc:
            response = exc.response()
        except Exception:
            app.log.exception("unhandled error", extra={"method": self.command, "path": path,
                                                        "request_id": request_id})
            response = json_response(500, {"error": "internal error", "request_id": request_id})
        # Logged before the answer is sent: whoever reads the answer can rely on the line being there.
        self._log_request(response.status, started, request_id, self.command, path)
        try:
            self._write(response, request_id, head_only=self.command == "HEAD")
        except OSError as exc:
            app.log.debug("client went away before the answer was sent",
                          extra={"error": str(exc), "request_id": request_id})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        if not is_digits(raw.strip()):
            raise HttpError(400, "Content-Length must be a non-negative integer")
        length = int(raw)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"request body too large (limit {MAX_BODY_BYTES} bytes)")
        return self.rfile.read(length)

    def _write(self, response: Response, request_id: str, head_only: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Request-ID", request_id)
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(response.body)

    def _log_request(self, status: int, started: float, request_id: str, method: str | None,
                     path: str | None) -> None:
        level = logging.WARNING if status >= 500 else logging.INFO
        self.server.app.log.log(level, "request", extra={
            "method": method, "path": path, "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2), "request_id": request_id,
        })

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Reached only for requests http.server itself rejects (bad request line, too-long headers, ...).
        started = time.perf_counter()
        request_id = request_id_from(self.headers.get("X-Request-ID") if getattr(self, "headers", None) else None)
        self.close_connection = True
        response = json_response(code, {"error": message or self.responses.get(code, ("error",))[0]})
        path = urlsplit(self.path).path if getattr(self, "path", None) else None
        self._log_request(code, started, request_id, getattr(self, "command", None), path)
        try:
            self._write(response, request_id, head_only=code < 200 or code in (204, 304))
        except OSError:
            pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # every request is logged once, as JSON, by _log_request

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature fixed by the base class
        self.server.app.log.debug("http.server: " + (format % args))


class Server(ThreadingHTTPServer):
    daemon_threads = False  # in-flight requests must be able to finish during a drain
    block_on_close = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._in_flight = 0
        self._idle = threading.Condition()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves our own FQDN, which can stall for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    # Counting at accept time (not inside the worker) closes the gap between accept and the worker's start.
    def process_request(self, request, client_address) -> None:
        with self._idle:
            self._in_flight += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight <= 0:
                self._idle.notify_all()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight <= 0, timeout=timeout)


class Service:
    """One running instance: ``start()`` listens in a background thread, ``stop()`` drains and closes."""

    def __init__(self, config: Config, log: logging.Logger | None = None, routes: RouteTable | None = None) -> None:
        self.config = config
        self.log = log or setup_logging(config)
        self._own_log = log is None
        self.app = App(config, self.log, routes)
        self.httpd: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self.httpd is not None, "not started"
        return self.httpd.server_port

    def start(self, poll_interval: float = 0.05) -> None:
        """Listen; ``poll_interval`` bounds how long ``stop()`` waits for the accept loop to notice."""
        self.app.prepare()
        self.httpd = Server((self.config.host, self.config.port), self.app)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": poll_interval},
                                        name="http-accept", daemon=True)
        self._thread.start()
        self.log.info("listening", extra={"host": self.config.host, "port": self.port,
                                          "revision": self.config.revision, "routes": len(self.app.router)})

    def stop(self) -> bool:
        """Drain and close; True when every in-flight request finished within ``drain_seconds``.

        Must not be called from the accept thread itself (``shutdown()`` would wait for itself forever).
        """
        if self.httpd is None:
            return True
        httpd, self.httpd = self.httpd, None
        self.log.info("draining", extra={"in_flight": httpd.in_flight, "drain_seconds": self.config.drain_seconds})
        started = time.monotonic()
        httpd.shutdown()
        httpd.socket.close()
        finished = httpd.wait_idle(self.config.drain_seconds)
        elapsed = round(time.monotonic() - started, 3)
        if finished:
            httpd.server_close()  # joins the (finished) worker threads
            self.log.info("drained", extra={"seconds": elapsed})
        else:
            self.log.warning("drain timed out; abandoning requests still in flight",
                             extra={"in_flight": httpd.in_flight, "seconds": elapsed})
        if self._own_log:
            close_logging(self.log)
        return finished


class _StopFlag:
    """Set from a signal handler. Plain attribute writes only: locks are not safe inside signal handlers."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum

    def wait(self, seconds: float | None = None) -> bool:
        deadline = None if seconds is None else time.monotonic() + seconds
        while self.signum is None:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)  # a stop is noticed within 20 ms: a deploy waits for the old container to exit
        return True


def run(config: Config) -> int:
    """Serve until SIGTERM/SIGINT, then drain and return the exit code."""
    log = setup_logging(config)
    log.info("starting", extra={"config": config.masked()})
    stop = _StopFlag()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)

    if config.boot_delay and stop.wait(config.boot_delay):
        log.info("stopped during boot delay", extra={"signal": signal.Signals(stop.signum).name})
        close_logging(log)
        return 0

    service = Service(config, log)
    try:
        service.start()
    except OSError as exc:
        log.error("cannot listen", extra={"host": config.host, "port": config.port, "error": str(exc)})
        close_logging(log)
        return 1

    stop.wait()
    log.info("stop requested", extra={"signal": signal.Signals(stop.signum).name})
    finished = service.stop()
    log.info("exiting", extra={"clean": finished})
    close_logging(log)
    if not finished:
        # Unfinished workers are non-daemon threads that would keep the interpreter alive past the drain bound.
        sys.stdout.flush()
        os._exit(0)
    return 0
