"""--metrics-port: the master's own Prometheus endpoint, so its figures are there with no dashboard running.

The master's loop owns every figure, so the loop renews a copy of its stats reply at most every
MASTER_METRICS_REFRESH_S, and a scrape (on the HTTP server's own thread) renders that copy: the thread
never touches the scheduler. The address follows the master's rule: loopback unless --keys or --insecure.
"""

from __future__ import annotations

import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Tuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from titan import defaults
from titan.metrics import ClusterCollector


class MetricsPort(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int):
        super().__init__((host, port), MetricsHandler)
        self._latest: Tuple[dict, bool] = ({}, False)
        self._renewed_at = float("-inf")
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(ClusterCollector(lambda: self._latest))
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="titan-master-metrics", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def renew(self, read_stats: Callable[[], dict]) -> None:
        """Called by the master's loop every turn; takes fresh stats when the last are old enough."""
        now = time.monotonic()
        if now - self._renewed_at >= defaults.MASTER_METRICS_REFRESH_S:
            self._renewed_at = now
            self._latest = (read_stats(), True)    # one reference swap: the scrape thread sees old or new

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()


class MetricsHandler(BaseHTTPRequestHandler):
    server: MetricsPort

    def log_message(self, format, *args) -> None:   # noqa: A002 (the base class's name)
        pass            # one line per scrape would fill the master's log

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/metrics":
            self._send(HTTPStatus.NOT_FOUND, b"only /metrics here\n", "text/plain; charset=utf-8")
            return
        self._send(HTTPStatus.OK, self.server.text(), CONTENT_TYPE_LATEST)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
