"""Connecting to PostgreSQL for the journal and the lease: psycopg (an optional extra), its settings,
and what its errors mean to Titan."""

from __future__ import annotations

import re

from titan import defaults
from titan.master import postgres_sql as sql

try:
    import psycopg
except ImportError:   # named by connect(), when a master is asked to use PostgreSQL
    psycopg = None

MISSING = ("--journal postgresql://... needs psycopg: pip install 'titan-scheduler[postgres]' "
           "(or psycopg[binary] into Titan's environment)")


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be used at all: psycopg is missing, or the URL is not one."""


def require_psycopg() -> None:
    if psycopg is None:
        raise PostgresUnavailable(MISSING)


def connect(url: str) -> "psycopg.Connection":
    """An autocommit connection (transactions are explicit); the server's socket is watched by TCP
    keepalives, so a partition shows as an error rather than a commit that never returns."""
    require_psycopg()
    return psycopg.connect(url, autocommit=True, connect_timeout=defaults.POSTGRES_CONNECT_TIMEOUT_S,
                           application_name="titan-master", keepalives=1, keepalives_idle=5,
                           keepalives_interval=2, keepalives_count=2)


def ensure_schema(db: "psycopg.Connection") -> None:
    """Create the tables and the fence function if they are not there; refuse a newer schema."""
    with db.transaction():
        db.execute(sql.LOCK_SCHEMA, (sql.SCHEMA_LOCK_KEY,))
        for statement in sql.SCHEMA:
            db.execute(statement)
        row = db.execute(sql.READ_VERSION).fetchone()
        if row is None:
            db.execute(sql.WRITE_VERSION, (str(sql.SCHEMA_VERSION),))
        elif row[0] != str(sql.SCHEMA_VERSION):
            raise PostgresUnavailable(f"the journal's schema is version {row[0]}; this Titan reads version "
                                      f"{sql.SCHEMA_VERSION}")


def is_deposed(exc: Exception) -> bool:
    return getattr(exc, "sqlstate", None) == sql.DEPOSED_SQLSTATE


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
