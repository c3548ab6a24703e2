"""`python -m benchmarks.dispatch_check [--rounds N]`: the worker's CPU to unpack and check one dispatch.

A dispatch as the master sends a T1 job (a DAG's job, its script named by hash), framed alone and in a
batch of 8 (the master sends one frame per worker per loop turn), decoded with `protocol.decode_batch`
against MASTER_TO_WORKER_OPS as `Worker._drain_master` does; and `protocol.check_message` alone, on the
unpacked dispatch. Prints the median and the least over ROUNDS of the microseconds per dispatch (CPU
time of this process; the cyclic garbage collector paused while timing, so a collection of this
benchmark's own lists falls in no round). Runs as a file too (`python benchmarks/dispatch_check.py`),
for A/B runs of another tree through PYTHONPATH.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from titan.core.jobs import JobSpec
from titan.net import jobwire, protocol

DISPATCHES_PER_ROUND = 20_000
BATCH = 8


def dispatch(n: int) -> dict:
    """What Master._dispatch builds for one T1 job after its script reached this worker once."""
    spec = JobSpec(job_id=f"t1_{n}", script=b"import runpy\nrunpy.run_path('noop.py')\n",
                   filename="starts_noop.py", isolation="pool")
    job = jobwire.job_to_wire(spec)
    job["script_sha256"] = jobwire.script_digest(spec.script)
    del job["script"]
    return protocol.message(protocol.MASTER_TO_WORKER_OPS, "dispatch", job=job, attempt=1, dag="t1_0_dag",
                            agent_run_id=None)


def us_per_dispatch(frames: list, per_frame: int) -> float:
    gc.disable()
    started = time.process_time()
    for frame in frames:
        for item in protocol.decode_batch(frame, protocol.MASTER_TO_WORKER_OPS):
            assert not isinstance(item, protocol.ProtocolError), item
    took = time.process_time() - started
    gc.enable()
    return 1e6 * took / (len(frames) * per_frame)


def us_per_check(messages: list) -> float:
    gc.disable()
    started = time.process_time()
    for message in messages:
        protocol.check_message(message, protocol.MASTER_TO_WORKER_OPS)
    took = time.process_time() - started
    gc.enable()
    return 1e6 * took / len(messages)


def measure(rounds: int) -> dict:
    messages = [protocol.decode_reply(protocol.encode(dispatch(n))) for n in range(DISPATCHES_PER_ROUND)]
    singles = [protocol.encode_batch([message]) for message in messages]
    batches = [protocol.encode_batch(messages[n:n + BATCH]) for n in range(0, len(messages), BATCH)]
    figures = {"check_us": [us_per_check(messages) for _ in range(rounds)],
               "alone_us": [us_per_dispatch(singles, 1) for _ in range(rounds)],
               "batched_us": [us_per_dispatch(batches, BATCH) for _ in range(rounds)]}
    return {name: (statistics.median(values), min(values)) for name, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    result = measure(args.rounds)
    print(f"the worker's CPU per dispatch, microseconds, median (least) of {args.rounds} rounds of "
          f"{DISPATCHES_PER_ROUND:,}:")
    for name, what in [("check_us", "check_message of the unpacked dispatch"),
                       ("alone_us", "decode_batch of a frame holding one dispatch"),
                       ("batched_us", f"decode_batch of a frame of {BATCH}, per dispatch")]:
        median, least = result[name]
        print(f"  {what:<48} {median:6.2f} ({least:.2f})")

if __name__ == "__main__":
    main()
