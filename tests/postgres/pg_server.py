"""A real PostgreSQL 15 server in a temporary folder, for the tests of the PostgreSQL journal.

`initdb` makes a cluster in the folder, `pg_ctl` starts it on a free loopback port with its unix socket
in the same folder. PostgreSQL refuses to run as root, so as root the folder is given to the `postgres`
user and every command runs through `runuser -u postgres --`. Without the server binaries (Debian's
`postgresql` package; .ci/run installs it) `require_postgres()` says what to install.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from typing import List, Optional

import pytest

from titan.cluster import free_port_block

PG_BIN = "/usr/lib/postgresql/15/bin"
SERVER_USER = "postgres"   # Debian's package makes it; the server runs as it when the tests run as root
START_TIMEOUT_S = 30


def missing_reason() -> Optional[str]:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    if not os.path.exists(os.path.join(PG_BIN, "initdb")):
        return (f"PostgreSQL 15 is not installed ({PG_BIN}/initdb is missing): "
                "`apt-get install postgresql` (as .ci/run does)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install -e '.[test,postgres]'"
    return None


class PostgresServer:
    """One server: `url` for Titan's --journal, `stop()`/`start()` to take it away and bring it back."""

    def __init__(self, folder: str, durable: bool = False):
        """`durable`: fsync as PostgreSQL does by default (benchmarks); tests run without (faster)."""
        self.folder, self.durable = folder, durable
        self.data = os.path.join(folder, "data")
        self.port = free_port_block("127.0.0.1", 1)
        self.url = f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"
        os.makedirs(folder, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        self._run(os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", SERVER_USER, "--auth=trust",
                  "-E", "UTF8", "--no-instructions")

    def start(self) -> "PostgresServer":
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder} "
                   f"-c fsync={'on' if self.durable else 'off'} -c max_connections=50")
        self._run(os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", options, "-l",
                  os.path.join(self.folder, "server.log"), "-w", "-t", str(START_TIMEOUT_S), "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """`mode` immediate is a crash: no checkpoint, clients cut off at once."""
        self._run(os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def log(self) -> str:
        try:
            with open(os.path.join(self.folder, "server.log"), errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def _run(self, *command: str, check: bool = True) -> None:
        prefix: List[str] = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL, timeout=START_TIMEOUT_S + 10, cwd=self.folder)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{self.log()}")


def wait_for_connection(url: str, timeout: float = 10.0) -> None:
    import psycopg
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def remove(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- fixtures (see tests/conftest.py)

@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the test session; skipped, saying why, when there is none."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    folder = tempfile.mkdtemp(prefix="titan-pg-")
    server = PostgresServer(folder)
    try:
        server.start()
        wait_for_connection(server.url)
        yield server
    finally:
        server.stop("immediate")
        remove(folder)


@pytest.fixture
def pg_url(postgres):
    """An empty database of its own on that server, for one test: tests never see each other's journals."""
    import psycopg
    if not postgres.running():
        postgres.start()
        wait_for_connection(postgres.url)
    name = f"titan_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    if postgres.running():
        with psycopg.connect(postgres.url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
