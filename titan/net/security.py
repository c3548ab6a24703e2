"""CURVE keys and authentication: the key directory, who may connect to which socket, job keys.

A key directory made by `titan keys init DIR` looks like this:

    DIR/master/master.key, master.key_secret   the master's keypair (the secret stays on the master)
    DIR/clients/NAME.key                        public keys of trusted clients
    DIR/workers/NAME.key                        public keys of trusted workers
    DIR/issued/client-NAME/, worker-NAME/       bundles to copy to the machine that uses them:
                                                master.key (public) + identity.key_secret

The master trusts exactly the public keys in clients/ and workers/; deleting one revokes it (the master
re-reads the folders, no restart). The master's authenticator (titan/master/gatekeeper.py) names each
connection "client:NAME", "worker:NAME" or "job:KEY" (its ZAP User-Id), so the master knows who sent
each message.

A job gets a key pair of its own, never its worker's: the master derives it from its secret and the
job's run and attempt (`job_keypair`), sends it with the dispatch, and honours it only while that attempt
runs. It opens the client, store and event sockets, never the workers' one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import zmq
import zmq.auth
from zmq.utils import z85

CLIENT, WORKER, JOB = "client", "worker", "job"
ROLE_FOLDERS = {CLIENT: "clients", WORKER: "workers"}
MASTER_FOLDER, ISSUED_FOLDER = "master", "issued"
IDENTITY, MASTER = "identity", "master"
KEYS_ENV = "TITAN_KEYS"

# Which roles each master socket (its ZAP domain) lets in. Only workers may register; clients and running
# jobs (each with its own key) use the rest. A worker key gets onto the request sockets only to be told,
# per request, that it may not ask anything (a refused handshake would look like a master that is down).
SOCKET_ROLES = {"clients": {CLIENT, JOB, WORKER}, "store": {CLIENT, JOB, WORKER}, "events": {CLIENT, JOB},
                "workers": {WORKER}}

log = logging.getLogger("titan.security")


class KeyFileError(ValueError):
    """A key directory or bundle that is missing or malformed; the message says what to run."""


# ----------------------------------------------------------------- making keys

def init_key_dir(root: str, client: str = CLIENT, worker: str = WORKER) -> None:
    if os.path.exists(os.path.join(root, MASTER_FOLDER, "master.key_secret")):
        raise KeyFileError(f"{root} already holds a master key; issue more keys with add-client / add-worker")
    for folder in (MASTER_FOLDER, *ROLE_FOLDERS.values(), ISSUED_FOLDER):
        os.makedirs(os.path.join(root, folder), mode=0o700, exist_ok=True)
    with _private_files():
        zmq.auth.create_certificates(os.path.join(root, MASTER_FOLDER), MASTER)
    issue(root, CLIENT, client)
    issue(root, WORKER, worker)


def trusted_key_path(root: str, role: str, name: str) -> str:
    """Where a key directory trusts `name`'s public key: deleting this file revokes it."""
    return os.path.join(root, ROLE_FOLDERS[role], f"{name}.key")


def bundle_path(root: str, role: str, name: str) -> str:
    """Where a key directory keeps the bundle issued to `name`, to be copied to its machine."""
    return os.path.join(root, ISSUED_FOLDER, f"{role}-{name}")


def issue(root: str, role: str, name: str) -> str:
    """A new keypair for `name` in `role`: its public key is trusted, its bundle is returned to be copied."""
    _check_name(name)
    master_public = os.path.join(root, MASTER_FOLDER, "master.key")
    if not os.path.exists(master_public):
        raise KeyFileError(f"{root} has no master key; run `titan keys init {root}` first")
    trusted, bundle = trusted_key_path(root, role, name), bundle_path(root, role, name)
    if os.path.exists(trusted) or os.path.exists(bundle):
        raise KeyFileError(f"a {role} named {name!r} already exists in {root}; delete {trusted} to revoke it")
    os.makedirs(bundle, mode=0o700)
    with _private_files():
        public_file, _ = zmq.auth.create_certificates(bundle, IDENTITY, metadata={"role": role, "name": name})
    with open(public_file, "rb") as source, open(trusted, "wb") as target:
        target.write(source.read())
    with open(master_public, "rb") as source, open(os.path.join(bundle, "master.key"), "wb") as target:
        target.write(source.read())
    return bundle


def write_bundle(folder: str, identity: "Identity") -> None:
    """Write a bundle holding `identity` (for a worker's jobs), readable by this user only."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with _private_files():
        for name, secret in ((IDENTITY, identity.secret), (MASTER, None)):
            public = identity.public if secret else identity.server_public
            lines = ["curve", f'    public-key = "{public.decode()}"']
            if secret:
                lines.append(f'    secret-key = "{secret.decode()}"')
            path = os.path.join(folder, f"{name}.key_secret" if secret else f"{name}.key")
            with open(path, "w") as handle:
                handle.write("\n".join(lines) + "\n")


class _private_files:
    """Files made inside are readable by this user only (no window where a secret is world-readable)."""

    def __enter__(self):
        self.old = os.umask(0o077)

    def __exit__(self, *exc):
        os.umask(self.old)


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise KeyFileError(f"key name {name!r} must be letters, digits, '-', '_' or '.'")


# ----------------------------------------------------------------- using keys (clients, workers, jobs)

@dataclass(frozen=True)
class Identity:
    """Who this process is to the master (its keypair) and who the master must be (its public key)."""

    public: bytes
    secret: bytes
    server_public: bytes

    def apply(self, socket: zmq.Socket) -> None:
        """Make `socket` a CURVE client; call before connect."""
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.curve_serverkey = self.server_public


def load_identity(path: str, role: str) -> Identity:
    """The identity in a bundle folder, or, given a whole key directory, its default bundle for `role`."""
    path = os.path.expanduser(path)
    if not os.path.exists(os.path.join(path, f"{IDENTITY}.key_secret")):
        default = bundle_path(path, role, role)
        if not os.path.isdir(default):
            raise KeyFileError(f"no keys in {path}: expected a bundle ({IDENTITY}.key_secret and master.key, "
                               f"from `titan keys add-{role} NAME`) or a directory made by `titan keys init`")
        path = default
    try:
        public, secret = zmq.auth.load_certificate(os.path.join(path, f"{IDENTITY}.key_secret"))
        server_public, _ = zmq.auth.load_certificate(os.path.join(path, "master.key"))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read the keys in {path}: {exc}") from None
    if not secret:
        raise KeyFileError(f"{path}/{IDENTITY}.key_secret holds no secret key")
    return Identity(public, secret, server_public)


def identity_from_environment(explicit: Optional[str], role: str) -> Optional[Identity]:
    path = explicit or os.environ.get(KEYS_ENV)
    return load_identity(path, role) if path else None


# ----------------------------------------------------------------- the master's side

class KeyRing:
    """The trusted public keys (z85) -> "role:NAME", re-read whenever a role folder changes."""

    def __init__(self, root: str):
        self.root = root
        self._lock = threading.Lock()
        self._stamp: Optional[tuple] = None
        self.users: Dict[bytes, str] = {}
        self.current: frozenset = frozenset()
        self.generation = 0   # how many times the folders were (re-)read
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the folders if they changed; True if they did."""
        folders = [os.path.join(self.root, folder) for folder in ROLE_FOLDERS.values()]
        stamp = tuple(_mtime(folder) for folder in folders)
        with self._lock:
            if stamp == self._stamp:
                return False
            users = {}
            for role, folder in ROLE_FOLDERS.items():
                for public in _public_keys(os.path.join(self.root, folder)):
                    users[public[1]] = f"{role}:{public[0]}"
            self.users, self.current, self._stamp = users, frozenset(users.values()), stamp
            self.generation += 1
        return True

    def user(self, z85_key: bytes) -> Optional[str]:
        self.refresh()
        return self.users.get(z85_key)

    def is_current(self, user: str) -> bool:
        return user in self.current


def _mtime(folder: str) -> int:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return -1


def _public_keys(folder: str):
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for file_name in names:
        if file_name.endswith(".key"):
            try:
                public, _ = zmq.auth.load_certificate(os.path.join(folder, file_name))
            except (OSError, ValueError):
                log.warning("ignored unreadable key file %s/%s", folder, file_name)
                continue
            yield file_name[:-len(".key")], public


@dataclass
class ServerKeys:
    public: bytes
    secret: bytes

    def apply(self, socket: zmq.Socket, domain: str) -> None:
        """Make `socket` a CURVE server whose peers the authenticator checks as `domain`; before bind."""
        socket.curve_server = True
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.zap_domain = domain.encode()
        # Without this libzmq lets in any key when no authenticator answers: fail closed instead.
        socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)

    def job_key_seed(self) -> bytes:
        """Job key pairs are derived from this (itself from the master's secret), so they survive a restart."""
        return hashlib.sha256(b"titan job key\0" + self.secret).digest()


def load_server_keys(root: str) -> ServerKeys:
    path = os.path.join(os.path.expanduser(root), MASTER_FOLDER, "master.key_secret")
    if not os.path.exists(path):
        raise KeyFileError(f"no master key at {path}; run `titan keys init {root}` to make one")
    public, secret = zmq.auth.load_certificate(path)
    if not secret:
        raise KeyFileError(f"{path} holds no secret key")
    return ServerKeys(public, secret)


# ----------------------------------------------------------------- job keys

def job_keypair(key: bytes, job_id: str, seq: int, attempt: int) -> Tuple[bytes, bytes]:
    """(public, secret), z85: the key pair of one attempt of one run of a job. Derived, not stored, so a
    restarted master recognises the jobs still running; a later run or attempt gets another pair."""
    seed = hmac.new(key, f"{seq}\0{attempt}\0{job_id}".encode(), hashlib.sha256).digest()
    secret = z85.encode(seed)
    return zmq.curve_public(secret), secret


# ----------------------------------------------------------------- who may bind where

def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a host name or "*": it may well be reachable from elsewhere


def refusal_to_bind(host: str) -> str:
    return (f"titan master: refusing to listen on {host} without keys: anyone who can reach it could run "
            "code on every worker.\n"
            "  Make keys with `titan keys init DIR`, then start the master, workers and clients with "
            "--keys DIR (or TITAN_KEYS=DIR);\n"
            "  or, on a network you trust completely, pass --insecure to listen without authentication "
            "or encryption.")
