"""The ceiling under S6: a bare ZeroMQ ROUTER that sends each request straight back, no decoding, no
store, no journal, driven exactly as S6 drives TitanStore (one DEALER and one zmq context per client
thread, one request in flight per thread, REQ framing). No store served over this transport from Python
can answer faster on the same machine.

`python -m benchmarks.echo` serves on a random loopback port and prints it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Callable

import zmq

# About the size of an encoded store put from the SDK.
REQUEST = b"\x84\xa2op\xa3put\xa3key\xacbench/0/1234\xa5value\xa1v\xa3rid\xb50123456789abcdef-1234"


def serve() -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        frames = router.recv_multipart()
        if frames[-1] == b"stop":
            return
        router.send_multipart(frames)


def round_trips_per_second(threads: int, total: int) -> float:
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.echo"], stdout=subprocess.PIPE, text=True)
    address = None
    try:
        address = f"tcp://127.0.0.1:{int(server.stdout.readline())}"
        per_thread = total // threads
        elapsed = timed_threads(threads, lambda ready: _client(address, per_thread, ready))
        return per_thread * threads / elapsed
    finally:
        _stop(address if server.poll() is None else None)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def timed_threads(threads: int, work: Callable[[threading.Barrier], None]) -> float:
    """Seconds from when every thread is connected (they wait at the barrier) until the last is done."""
    ready = threading.Barrier(threads + 1, timeout=60)   # a thread that failed to connect breaks it
    workers = [threading.Thread(target=work, args=(ready,)) for _ in range(threads)]
    for thread in workers:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    return time.perf_counter() - started


def _client(address: str, count: int, ready: threading.Barrier) -> None:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(address)
    poller = zmq.Poller()
    poller.register(dealer, zmq.POLLIN)
    dealer.send_multipart([b"", REQUEST])   # connected once this first round trip is back
    dealer.recv_multipart()
    ready.wait()
    for _ in range(count):
        dealer.send_multipart([b"", REQUEST])
        poller.poll()
        dealer.recv_multipart()
    dealer.close(linger=0)
    ctx.term()


def _stop(address) -> None:
    if address is None:
        return
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(address)
    dealer.send_multipart([b"", b"stop"])
    time.sleep(0.1)
    dealer.close(linger=0)
    ctx.term()


if __name__ == "__main__":
    serve()
