"""`postgres`: a real PostgreSQL server for the test session (skipped, saying why, when there is none);
`pg_url`: an empty database on it for one test, so tests never see each other's journals."""

from __future__ import annotations

import tempfile
import uuid

import pytest

from tests.postgres.pg_server import PostgresServer, missing_reason, remove, wait_for_connection


@pytest.fixture(scope="session")
def postgres():
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
    import psycopg
    name = f"titan_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
