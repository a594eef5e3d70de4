"""`/metrics`, `/healthz` and `/readyz` on one port.

`/healthz` says the loop is alive (it turned recently); a supervisor restarts
the worker when it is not. `/readyz` says the worker can do useful work: the
model is loaded and warmed, partitions are assigned, and it is not waiting on
Kafka. A worker that paused its input until Kafka takes its outputs is alive
(its loop turns, polling) but not ready.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


class Health:
    """Shared state between the poll loop (writer) and the HTTP server (reader)."""

    def __init__(self, stall_after_s: float = 60.0, busy_after_s: float = 10.0) -> None:
        self.stall_after_s = stall_after_s
        # Not ready sooner than not alive: a loop stuck on Kafka this long (an outage) should get no new work.
        self.busy_after_s = busy_after_s
        self.model_ready = False
        self.assigned = False
        self.broker_up = False
        self.waiting_since: float | None = None  # when the worker paused its input to wait for Kafka to take outputs
        self._last_turn = time.monotonic()

    def turned(self) -> None:
        self._last_turn = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        idle = time.monotonic() - self._last_turn
        if idle > self.stall_after_s:
            return False, f"the poll loop has not turned for {idle:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        for ok, why in ((self.model_ready, "model not loaded"), (self.broker_up, "broker unreachable"), (self.assigned, "no partitions assigned")):
            if not ok:
                return False, why
        now = time.monotonic()
        idle = now - self._last_turn
        if idle > self.busy_after_s:
            return False, f"the poll loop has been waiting on Kafka for {idle:.0f} s"
        waiting = 0.0 if self.waiting_since is None else now - self.waiting_since
        if waiting > self.busy_after_s:
            return False, f"input paused: waiting on Kafka to take outputs for {waiting:.0f} s"
        return True, "ok"


def serve(health: Health, host: str, port: int) -> ThreadingHTTPServer:
    """Start the server in a daemon thread; the caller shuts it down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok, why = health.alive() if self.path == "/healthz" else health.ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # scrapes every few seconds would drown the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
