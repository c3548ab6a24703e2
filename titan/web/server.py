"""The dashboard's HTTP server: the page, a server-sent event stream, logs, gate decisions and /metrics.

The standard library's ThreadingHTTPServer is enough: a handful of routes, one thread per connection, and
SSE is plain HTTP. Every request must name this server in its Host header (so a web page elsewhere
cannot reach it through DNS rebinding), and a POST must be JSON from this origin (so a form on another
site cannot approve a gate) and carry this start's token (X-Titan-Token), which the page takes from the
URL printed at start, as Jupyter does: another local user or process cannot act through the dashboard.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import queue
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from titan import defaults
from titan.core.errors import MasterUnreachable, TitanError
from titan.net.security import is_loopback
from titan.web import jobs_api
from titan.web.feed import EventFeed, Hub
from titan.web.metrics import DashboardMetrics
from titan.web.view import ClusterView

log = logging.getLogger("titan.web")

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
ACTIONS = ("cancel", "retry")


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, client, host: str = defaults.DEFAULT_BIND_HOST, port: int = defaults.DASHBOARD_PORT,
                 token: Optional[str] = None):
        super().__init__((host, port), DashboardHandler)
        self.client = client
        self.token = token or secrets.token_urlsafe(24)   # what an action must carry; new each start
        self.hub = Hub(ClusterView())
        self.metrics = DashboardMetrics(self.stats_for_scrape)
        self.feed = EventFeed(client, self.hub, self.metrics.timings)
        self.job_source = client.list_jobs   # the job table's and timelines' one source (jobs_api)
        self.stopping = threading.Event()
        # Bound beyond loopback on purpose, it is reached by names we cannot know: accept any.
        self.allowed_hosts = {f"{name}:{self.port}" for name in LOOPBACK_NAMES} if is_loopback(host) else None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start_feed(self) -> None:
        self.feed.start()

    def stop(self) -> None:
        self.stopping.set()
        self.feed.stop()
        self.feed.join(timeout=defaults.DASHBOARD_CLIENT_TIMEOUT_S + 1)
        self.server_close()

    def stats_for_scrape(self) -> Tuple[dict, bool]:
        """Exact figures at scrape time; the last known ones if the master does not answer."""
        try:
            stats = self.client.stats()
        except MasterUnreachable:
            return self.hub.read(lambda view: dict(view.stats)), False
        return stats, True


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "TitanDashboard"

    def log_message(self, format, *args) -> None:   # noqa: A002 (the base class's name)
        # Only at --log-level DEBUG: one line per request would drown the terminal in log polls.
        log.debug("%s %s", self.address_string(), format % args)

    # ----------------------------------------------------------------- routing

    def do_GET(self) -> None:
        if not self._host_allowed():
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/":
            self._send_static("index.html")
        elif url.path.startswith("/static/"):
            self._send_static(url.path[len("/static/"):])
        elif url.path == "/api/events":
            self._stream_events()
        elif url.path == "/api/snapshot":
            self._send_json(self.server.hub.read(lambda view: view.snapshot()))
        elif url.path == "/api/logs":
            self._send_logs(_one(query, "job"), _one(query, "offset") or "0")
        elif url.path in ("/api/jobs", "/api/timeline"):
            self._send_jobs(url.path, {name: values[0] for name, values in query.items()})
        elif url.path == "/metrics":
            self._send(HTTPStatus.OK, self.server.metrics.text(), CONTENT_TYPE_LATEST)
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"no page {url.path!r}")

    def do_POST(self) -> None:
        if not self._host_allowed() or not self._post_allowed() or not self._token_given():
            return
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["api", "gates"] and parts[3] in ("approve", "reject"):
            self._decide_gate(unquote(parts[2]), parts[3])
        elif len(parts) == 4 and parts[:2] in (["api", "jobs"], ["api", "dags"]) and parts[3] in ACTIONS:
            self._act(parts[1], unquote(parts[2]), parts[3])
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"no action {self.path!r}; try /api/gates/GATE/approve, "
                                                   "/api/jobs/JOB/cancel or /api/dags/DAG/retry")

    # ----------------------------------------------------------------- guards

    def _host_allowed(self) -> bool:
        allowed = self.server.allowed_hosts
        if allowed is None or self.headers.get("Host", "") in allowed:
            return True
        self._send_error(HTTPStatus.FORBIDDEN, f"Host header {self.headers.get('Host')!r} does not name "
                                               f"this dashboard; use http://127.0.0.1:{self.server.port}/")
        return False

    def _post_allowed(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            self._send_error(HTTPStatus.FORBIDDEN, f"requests from {origin} may not change anything here")
            return False
        if self.headers.get_content_type() != "application/json":
            self._send_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the request body as application/json")
            return False
        return True

    def _token_given(self) -> bool:
        if hmac.compare_digest(self.headers.get("X-Titan-Token", "").encode(), self.server.token.encode()):
            return True
        self._send_error(HTTPStatus.FORBIDDEN, "actions need this dashboard's token: open the address it printed "
                                               "when it started (the one ending in ?token=...)")
        return False

    # ----------------------------------------------------------------- answers

    def _stream_events(self) -> None:
        browser = self.server.hub.attach()
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n")
            self._pump(browser)
        except (BrokenPipeError, ConnectionResetError):
            pass             # the browser went away
        finally:
            self.server.hub.detach(browser)

    def _pump(self, browser: queue.Queue) -> None:
        while not self.server.stopping.is_set():
            try:
                message = browser.get(timeout=defaults.DASHBOARD_KEEPALIVE_S)
            except queue.Empty:
                self.wfile.write(b": keepalive\n\n")   # also how a vanished browser is noticed
                self.wfile.flush()
                continue
            if message is None:
                return       # it fell behind; ending the stream makes it reconnect and resnapshot
            self.wfile.write(b"data: " + json.dumps(message, default=str).encode() + b"\n\n")
            self.wfile.flush()

    def _send_logs(self, job_id: Optional[str], offset_text: str) -> None:
        if not job_id or not offset_text.isdigit():
            self._send_error(HTTPStatus.BAD_REQUEST, "give ?job=JOB_ID and optionally &offset=N (N >= 0)")
            return
        try:
            text = self.server.client.fetch_logs(job_id)
            state = self.server.client.job_info(job_id)["state"]
        except TitanError as exc:
            self._send_titan_error(exc)
            return
        offset = min(int(offset_text), len(text))
        start = max(offset, len(text) - defaults.DASHBOARD_LOG_CHUNK_CHARS)
        self._send_json({"job_id": job_id, "state": state, "text": text[start:], "offset": len(text),
                         "skipped": start - offset})

    def _decide_gate(self, gate_id: str, verb: str) -> None:
        body = self._json_body()
        if body is None:
            return
        try:
            if verb == "approve":
                state = self.server.client.approve(gate_id)
            else:
                state = self.server.client.reject(gate_id, str(body.get("reason") or "rejected from the dashboard"))
        except TitanError as exc:
            self._send_titan_error(exc)
            return
        self._send_json({"gate_id": gate_id, "state": state})

    def _act(self, kind: str, name: str, verb: str) -> None:
        """Cancel or Retry a job or a DAG; the answer is its state (a job) or its description (a DAG)."""
        if self._json_body() is None:
            return
        client = self.server.client
        try:
            if kind == "jobs":
                answer = {"job_id": name, "state": (client.cancel if verb == "cancel" else client.retry)(name)}
            else:
                answer = (client.cancel_dag if verb == "cancel" else client.retry_dag)(name)
        except TitanError as exc:
            self._send_titan_error(exc)
            return
        self._send_json(answer)

    def _send_jobs(self, path: str, query: dict) -> None:
        try:
            if path == "/api/jobs":
                answer = jobs_api.search(self.server.job_source, query)
            else:
                answer = jobs_api.timeline(self.server.job_source, query.get("dag"))
        except jobs_api.BadQuery as exc:
            self._send_error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        except TitanError as exc:
            self._send_titan_error(exc)
            return
        self._send_json(answer)

    def _json_body(self) -> Optional[dict]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as exc:
            self._send_error(HTTPStatus.BAD_REQUEST, f"the request body is not JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self._send_error(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
            return None
        return body

    def _send_static(self, name: str) -> None:
        path = os.path.join(STATIC_DIR, name)
        extension = os.path.splitext(name)[1]
        if "/" in name or name.startswith(".") or extension not in CONTENT_TYPES or not os.path.isfile(path):
            self._send_error(HTTPStatus.NOT_FOUND, f"no file {name!r}")
            return
        with open(path, "rb") as file:
            self._send(HTTPStatus.OK, file.read(), CONTENT_TYPES[extension])

    def _send_titan_error(self, exc: TitanError) -> None:
        status = HTTPStatus.SERVICE_UNAVAILABLE if isinstance(exc, MasterUnreachable) else \
            HTTPStatus.NOT_FOUND if isinstance(exc, LookupError) else HTTPStatus.CONFLICT
        self._send_error(status, exc.message, kind=exc.kind)

    def _send_error(self, status: HTTPStatus, message: str, kind: str = "") -> None:
        self._send_json({"error": message, "kind": kind or status.phrase}, status)

    def _send_json(self, payload: dict, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(payload, default=str).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def _one(query: dict, name: str) -> Optional[str]:
    values = query.get(name)
    return values[0] if values else None
