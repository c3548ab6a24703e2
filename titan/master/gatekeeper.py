"""The master's side of CURVE: its keys, the authenticator thread, and who may do what per message.

With --keys every master socket is a CURVE server; the authenticator lets in only trusted keys, in the
roles each socket allows (titan.net.security.SOCKET_ROLES). Per message, the master then checks that the
key is still trusted (deleting its file revokes it), and that a worker key acts as a client only for a
job that is running on that very worker right now, proven by the job token sent with the dispatch.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, Optional

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from titan import defaults
from titan.core.errors import AccessDenied
from titan.core.jobs import JobState
from titan.net import security

log = logging.getLogger("titan.master")

# The same refused key knocks again every reconnect interval; say so once a minute, not ten times a second.
REFUSAL_LOG_EVERY_S = 60.0


class MasterAuthenticator(ThreadAuthenticator):
    """Lets in only keys in the key ring, and only in the roles each socket allows; names each connection
    "role:NAME" (its ZAP User-Id)."""

    def __init__(self, ctx: zmq.Context, ring: security.KeyRing):
        super().__init__(ctx)
        self.ring = ring
        self._last_refusal: Dict[tuple, float] = {}

    def start(self) -> None:
        super().start()
        for domain in security.SOCKET_ROLES:   # zmq.auth looks the domain up exactly: "*" would not cover these
            self.configure_curve_callback(domain, self)

    def callback(self, domain: str, z85_key: bytes) -> bool:
        try:
            return self._may_connect(domain, z85_key)
        except Exception:   # an error here would end the authenticator's thread: refuse this one instead
            log.exception("error checking a key on the %s socket; refused it", domain)
            return False

    def _may_connect(self, domain: str, z85_key: bytes) -> bool:
        user = self.ring.user(z85_key)
        allowed = security.SOCKET_ROLES.get(domain, set())
        if user is not None and user.split(":", 1)[0] in allowed:
            return True
        if user is None:
            self._refused(domain, z85_key, f"refused an unknown key {z85_key[:8].decode()}... on the {domain} "
                                           "socket (not in the key directory, or revoked)")
        else:
            self._refused(domain, z85_key, f"refused {user} on the {domain} socket: only "
                                           f"{' or '.join(sorted(allowed))} keys may connect there")
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.ring.user(z85.encode(client_public_key)) or "unknown"

    def _refused(self, domain: str, z85_key: bytes, message: str) -> None:
        now = time.monotonic()
        if now - self._last_refusal.get((domain, z85_key), float("-inf")) >= REFUSAL_LOG_EVERY_S:
            if len(self._last_refusal) > 10_000:
                self._last_refusal.clear()
            self._last_refusal[(domain, z85_key)] = now
            log.warning(message)


class Gatekeeper:
    def __init__(self, root: str):
        self.keys = security.load_server_keys(root)
        self.ring = security.KeyRing(root)
        self.token_key = self.keys.token_key()
        self.worker_users: Dict[str, str] = {}    # worker connection id -> "worker:NAME"
        self.authenticator: Optional[MasterAuthenticator] = None
        self._next_refresh = 0.0
        self._generation_seen = self.ring.generation

    def start(self, ctx: zmq.Context) -> None:
        """Before any socket binds: a CURVE server with no authenticator would let every key in."""
        self.authenticator = MasterAuthenticator(ctx, self.ring)
        self.authenticator.start()

    def stop(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None

    def secure(self, socket: zmq.Socket, domain: str) -> None:
        self.keys.apply(socket, domain)

    def token_for(self, job_id: str, attempt: int) -> str:
        return security.job_token(self.token_key, job_id, attempt)

    def check_request(self, user: Optional[str], token, jobs: dict) -> None:
        """Raise AccessDenied unless `user` may make a client or store request now."""
        if user is None or not self.ring.is_current(user):
            raise AccessDenied(f"the key of this connection ({user or 'unknown'}) is no longer trusted by the "
                               "master (revoked); ask for a new one")
        if not user.startswith(f"{security.WORKER}:"):
            return
        claim = security.parse_job_token(self.token_key, token)
        if claim is None:
            raise AccessDenied(f"{user} is a worker key: it may act as a client only from inside a job it runs, "
                               f"with that job's {security.JOB_TOKEN_ENV}")
        run = jobs.get(claim[0])
        if (run is None or run.state != JobState.RUNNING or run.attempt != claim[1]
                or self.worker_users.get(run.worker_id) != user):
            raise AccessDenied(f"the job token of {claim[0]!r} (attempt {claim[1]}) is not that of a job "
                               f"running on {user} now")

    def admit_worker(self, worker_id: str, user: Optional[str]) -> bool:
        if user is None or not self.ring.is_current(user):
            log.warning("refused a worker registration from connection %s: key %s is not trusted (revoked?)",
                        worker_id, user or "unknown")
            return False
        self.worker_users[worker_id] = user
        return True

    def revoked_workers(self, now: float, connected) -> list:
        """Connections of workers whose key was deleted since the last look (at most once a second)."""
        if now < self._next_refresh:
            return []
        self._next_refresh = now + defaults.KEY_REFRESH_INTERVAL_S
        self.ring.refresh()   # the authenticator's thread may have re-read the folders already
        if self.ring.generation == self._generation_seen:
            return []
        self._generation_seen = self.ring.generation
        self.worker_users = {wid: user for wid, user in self.worker_users.items() if wid in connected}
        return [wid for wid, user in self.worker_users.items() if not self.ring.is_current(user)]
