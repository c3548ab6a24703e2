"""`python -m benchmarks.store_sets [--members N]`: what one TitanStore `sadd` costs as its set grows.

A master with a journal (no workers) and one client adding N members to one set, one request at a time.
Prints the median latency of the first and the last 500 adds: with a journal that wrote the whole set at
each add, the last ones cost in proportion to the set's size. Runs as a file too
(`python benchmarks/store_sets.py`), for A/B runs of another tree through PYTHONPATH.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from titan.cluster import LocalCluster

WINDOW = 500


def measure(members: int) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        with LocalCluster(workers=[], data_dir=data_dir) as cluster, cluster.client(timeout=30) as client:
            took = []
            for n in range(members):
                started = time.perf_counter()
                client.store_sadd("bench:set", f"member-{n:08d}")
                took.append(time.perf_counter() - started)
            assert len(client.store_smembers("bench:set")) == members
    return {"first_ms": 1000 * statistics.median(took[:WINDOW]),
            "last_ms": 1000 * statistics.median(took[-WINDOW:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3_000)
    args = parser.parse_args()
    result = measure(args.members)
    print(f"sadd to one set of up to {args.members:,} members: median of the first {WINDOW} "
          f"{result['first_ms']:.2f} ms, of the last {WINDOW} {result['last_ms']:.2f} ms")


if __name__ == "__main__":
    main()
