"""The same five shapes (T1-T5) on a peer system, in a process of their own: `python -m
benchmarks.peer_tasks ray|dask SIZES_JSON` prints one JSON line {shape: [figures]}. Each peer runs a
trivial Python function per task (as Titan runs a trivial script per job) on 8 slots: Ray with
num_cpus=8, Dask with 2 worker processes x 4 threads. A process of its own, so whatever a peer starts
and forgets dies with it, and its imports do not weigh on Titan's figures."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List


def noop(*_parents) -> str:
    return "ok"


def fresh_python(noop_script: str, *_index) -> int:
    return subprocess.run([sys.executable, noop_script], stdout=subprocess.DEVNULL).returncode


class Peer:
    """submit(fn, *args) -> future; gather(futures) -> results."""

    def shapes(self, sizes: dict, runs: int) -> Dict[str, List[float]]:
        figures: Dict[str, List[float]] = {}
        shapes: Dict[str, Callable[[], float]] = {
            "T1": lambda: sizes["T1"] / self.timed(lambda: self.gather([self.submit(noop, n) for n in range(sizes["T1"])])),
            "T2": lambda: sizes["T2"] / self.timed(lambda: self.gather(
                [self.submit(fresh_python, sizes["noop_script"], n) for n in range(sizes["T2"])])),
            "T3": lambda: self.timed(lambda: self.chain(sizes["T3"])) * 1000 / sizes["T3"],
            "T4": lambda: self.timed(lambda: self.fan(sizes["T4"])),
            "T5": lambda: statistics.median(self.timed(lambda: self.gather([self.submit(noop, n)])) * 1000
                                            for n in range(sizes["T5"])),
        }
        for shape, run in shapes.items():
            run()   # warm-up
            figures[shape] = [run() for _ in range(runs)]
        return figures

    @staticmethod
    def timed(work: Callable[[], object]) -> float:
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    def chain(self, links: int) -> None:
        last = self.submit(noop, -1)
        for _ in range(links - 1):
            last = self.submit(noop, last)
        self.gather([last])

    def fan(self, width: int) -> None:
        root = self.submit(noop, -1)
        middle = [self.submit(noop, root, n) for n in range(width)]
        self.gather([self.submit(noop, *middle)])


class RayPeer(Peer):
    def __init__(self) -> None:
        import ray
        self.ray = ray
        ray.init(num_cpus=8, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        self.remotes: Dict[Callable, object] = {}

    def submit(self, fn, *args):
        remote = self.remotes.get(fn) or self.remotes.setdefault(fn, self.ray.remote(fn))
        return remote.remote(*args)

    def gather(self, futures):
        return self.ray.get(futures)

    def close(self) -> None:
        self.ray.shutdown()


class DaskPeer(Peer):
    def __init__(self) -> None:
        from distributed import Client, LocalCluster
        self.cluster = LocalCluster(n_workers=2, threads_per_worker=4, processes=True, dashboard_address=None)
        self.client = Client(self.cluster)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def gather(self, futures):
        return self.client.gather(futures)

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


PEERS = {"ray": RayPeer, "dask": DaskPeer}


def main(name: str, sizes_json: str) -> int:
    settings = json.loads(sizes_json)
    peer = PEERS[name]()
    try:
        print(json.dumps(peer.shapes(settings, settings["runs"])), flush=True)
    finally:
        peer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
