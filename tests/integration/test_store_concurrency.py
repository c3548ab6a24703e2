"""TitanStore under concurrent clients: incr and sadd are atomic on the master, whoever calls them."""

from __future__ import annotations

import threading

from titan_sdk import TitanClient

THREADS, ROUNDS = 4, 150


def test_concurrent_incr_and_sadd_lose_nothing(cluster, client):
    errors = []

    def hammer(index: int) -> None:
        try:
            with TitanClient(port=cluster.port, timeout=30) as own:
                for round_ in range(ROUNDS):
                    own.store_incr("counter")
                    own.store_incr("by-three", 3)
                    own.store_sadd("members", f"{index}-{round_ % 50}")
        except Exception as exc:   # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert client.store_get("counter") == str(THREADS * ROUNDS)
    assert client.store_get("by-three") == str(3 * THREADS * ROUNDS)
    assert len(client.store_smembers("members")) == THREADS * 50
