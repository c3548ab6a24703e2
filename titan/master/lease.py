"""Which of the masters sharing a PostgreSQL journal leads: a lease row with an epoch (a fencing token).

A master starts as a standby: it waits, polling the lease, until the lease has not been renewed for
`timeout` seconds by the database's clock, then takes it, adding one to the epoch. Only then does it
open the journal (with that epoch), load it as a restart does, and bind its sockets. The leader renews
the lease with every journal transaction (titan_fence in postgres_sql.py) and at least every
LEASE_RENEW_S; once another master has taken it, the fence fails and the deposed master exits.

Standbys record themselves in titan_standbys while they wait, so the leader's stats can list them.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from titan import defaults
from titan.master import postgres_sql as sql
from titan.master.postgres_connect import connect, ensure_schema, psycopg, redacted

log = logging.getLogger("titan.master")


class Lease:
    def __init__(self, url: str, holder: str, address: str, timeout: float = defaults.LEASE_TIMEOUT_S):
        self.url, self.holder, self.address, self.timeout = url, holder, address, timeout
        self.epoch: Optional[int] = None
        self._db = None

    def wait(self, keep_waiting: Callable[[], bool], poll: float = defaults.STANDBY_POLL_S) -> Optional[int]:
        """The epoch once this master holds the lease; None if `keep_waiting()` turned false first."""
        said = None
        while keep_waiting():
            try:
                epoch = self.try_take()
                if epoch is not None:
                    return epoch
                said = self._say_who_leads(said)
            except psycopg.Error as exc:
                self._drop_connection()
                if said != "unreachable":
                    log.warning("standby: PostgreSQL at %s cannot be reached (%s); still trying",
                                redacted(self.url), str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
                said = "unreachable"
            time.sleep(poll)
        return None

    def try_take(self) -> Optional[int]:
        """Take the lease if nobody holds it or its holder let it expire; the new epoch, else None."""
        db = self._connection()
        with db.transaction():
            row = db.execute(sql.TAKE_FIRST_LEASE, self._params()).fetchone() or \
                db.execute(sql.TAKE_EXPIRED_LEASE, self._params()).fetchone()
            if row is None:
                db.execute(sql.SEEN_STANDBY, self._params())
                return None
            db.execute(sql.FORGET_STANDBY, (self.holder,))
        self.epoch = row[0]
        return self.epoch

    def _say_who_leads(self, said: Optional[str]) -> str:
        info = read_leadership(self._connection())
        leader = f"{info['leader']} at {info['address']}" if info else "nobody"
        if said != leader:
            log.info("standby: %s leads (epoch %s); taking over if its lease is not renewed for %gs",
                     leader, info and info["epoch"], self.timeout)
        return leader

    def _params(self) -> dict:
        return {"holder": self.holder, "address": self.address, "timeout": self.timeout}

    def _connection(self):
        if self._db is None or self._db.closed or self._db.broken:
            self._drop_connection()
            self._db = connect(self.url)
            ensure_schema(self._db)
        return self._db

    def _drop_connection(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db = None

    def close(self) -> None:
        """Leave the standbys' list (a leader is no longer in it) and close the connection."""
        try:
            if self._db is not None and not self._db.broken:
                self._db.execute(sql.FORGET_STANDBY, (self.holder,))
        except psycopg.Error:
            pass
        self._drop_connection()


def read_leadership(db) -> Optional[dict]:
    """Who leads, since when (Unix time), the epoch, and the standbys seen lately; None before any lease."""
    row = db.execute(sql.READ_LEASE).fetchone()
    if row is None:
        return None
    epoch, holder, address, since, silent_for = row
    standbys = [{"name": name, "address": at, "waiting_since": float(started)}
                for name, at, started in db.execute(sql.READ_STANDBYS, (defaults.LEASE_TIMEOUT_S,))]
    return {"epoch": epoch, "leader": holder, "address": address, "since": float(since),
            "renewed_seconds_ago": round(float(silent_for), 3), "standbys": standbys}
