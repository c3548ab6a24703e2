"""The master's side of CURVE: its keys, the authenticator thread, and who may do what per message.

With --keys every master socket is a CURVE server; the authenticator lets in only trusted keys, in the
roles each socket allows (titan.net.security.SOCKET_ROLES). Per message, the master then checks that the
key is still trusted (deleting its file revokes it). A running job has a key pair of its own, sent with
its dispatch and honoured only while that attempt runs (`job_key`, `forget_ended`); a worker's key never
acts as a client.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, Optional, Tuple

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

    def __init__(self, ctx: zmq.Context, ring: security.KeyRing, job_users: Dict[bytes, str]):
        super().__init__(ctx)
        self.ring = ring
        self.job_users = job_users   # z85 public key of a running job -> "job:KEY", kept by the Gatekeeper
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

    def user(self, z85_key: bytes) -> Optional[str]:
        return self.ring.user(z85_key) or self.job_users.get(z85_key)

    def _may_connect(self, domain: str, z85_key: bytes) -> bool:
        user = self.user(z85_key)
        allowed = security.SOCKET_ROLES.get(domain, set())
        if user is not None and user.split(":", 1)[0] in allowed:
            return True
        if user is None:
            self._refused(domain, z85_key, f"refused an unknown key {z85_key[:8].decode()}... on the {domain} "
                                           "socket (not in the key directory, revoked, or a job's that ended)")
        else:
            self._refused(domain, z85_key, f"refused {user} on the {domain} socket: only "
                                           f"{' or '.join(sorted(allowed))} keys may connect there")
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.user(z85.encode(client_public_key)) or "unknown"

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
        self.job_key_seed = self.keys.job_key_seed()
        self.worker_users: Dict[str, str] = {}    # worker connection id -> "worker:NAME"
        # The keys of the job attempts running now: public key -> "job:KEY", and "job:KEY" -> (job, seq,
        # attempt). Read by the authenticator's thread, changed by the master's (single dict operations).
        self.job_users: Dict[bytes, str] = {}
        self.job_claims: Dict[str, tuple] = {}
        self._job_keys_of: Dict[str, set] = {}   # job id -> its "job:KEY" users still honoured
        self.authenticator: Optional[MasterAuthenticator] = None
        self._next_refresh = 0.0
        self._generation_seen = self.ring.generation

    def start(self, ctx: zmq.Context) -> None:
        """Before any socket binds: a CURVE server with no authenticator would let every key in."""
        self.authenticator = MasterAuthenticator(ctx, self.ring, self.job_users)
        self.authenticator.start()

    def stop(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None

    def secure(self, socket: zmq.Socket, domain: str) -> None:
        self.keys.apply(socket, domain)

    def job_key(self, job_id: str, seq: int, attempt: int) -> Tuple[str, str]:
        """The key pair of this attempt (public, secret; z85 text), honoured from now until forget_jobs."""
        public, secret = security.job_keypair(self.job_key_seed, job_id, seq, attempt)
        user = f"{security.JOB}:{public.decode()}"
        self.job_claims[user] = (job_id, seq, attempt)
        self.job_users[public] = user
        self._job_keys_of.setdefault(job_id, set()).add(user)
        return public.decode(), secret.decode()

    def forget_ended(self, runs) -> list:
        """Stop honouring the keys of these runs' attempts that are not running now; returns those public
        keys (z85), so their event subscriptions end too."""
        revoked = []
        for run in runs:
            users = self._job_keys_of.get(run.job_id)
            for user in list(users or ()):
                if run.state != JobState.RUNNING or self.job_claims[user][1:] != (run.seq, run.attempt):
                    users.discard(user)
                    del self.job_claims[user]
                    public = user.split(":", 1)[1].encode()
                    self.job_users.pop(public, None)
                    revoked.append(public)
            if users is not None and not users:
                del self._job_keys_of[run.job_id]
        return revoked

    def key_owner(self, z85_key: bytes) -> Optional[str]:
        """Who this public key is honoured as now ("client:NAME", "job:KEY"), None once revoked; the key
        folders as last read (the loop re-reads them each second), so no file system call here."""
        return self.ring.users.get(z85_key) or self.job_users.get(z85_key)

    @staticmethod
    def revocation_reason(user: Optional[str]) -> str:
        """Why the master no longer honours `user`'s key, for the one it ends an event subscription of."""
        if user is not None and user.startswith(f"{security.JOB}:"):
            return (f"the key of this event subscription ({user[:12]}...) was revoked: the job attempt it "
                    "was given to has ended")
        return (f"the key of this event subscription ({user}) was revoked: its public key was deleted from "
                "the master's key directory")

    def check_request(self, user: Optional[str], jobs: dict) -> None:
        """Raise AccessDenied unless `user` may make a client or store request now."""
        if user is not None and user.startswith(f"{security.JOB}:"):
            self._check_job(user, jobs)
        elif user is None or not self.ring.is_current(user):
            raise AccessDenied(f"the key of this connection ({user or 'unknown'}) is no longer trusted by the "
                               "master (revoked); ask for a new one")
        elif user.startswith(f"{security.WORKER}:"):
            raise AccessDenied(f"{user} is a worker key: it registers a worker and does nothing else (a job "
                               "acts as a client with the key its dispatch gave it)")

    def _check_job(self, user: str, jobs: dict) -> None:
        claim = self.job_claims.get(user)
        run = jobs.get(claim[0]) if claim else None
        if run is None or run.state != JobState.RUNNING or (run.seq, run.attempt) != claim[1:]:
            raise AccessDenied("this job's key is no longer valid: the attempt it was given to has ended")

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
