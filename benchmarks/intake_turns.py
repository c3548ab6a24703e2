"""`python -m benchmarks.intake_turns [--jobs 10000] [--rounds 5]`: the loop turns a large submission takes.

A master (journal in a temporary directory, no workers) is handed submissions of --jobs jobs as the loop
hands them (Master._answer), and its turns are run by hand: the turn the request arrives in, then one
turn per slice (Master._take_in) and the commit (Master._end_turn), until it is answered. Printed for
each round, wall and CPU ms: the longest turn, the admission's turn, the longest other slice, and the
number of turns; first taken in at once (INTAKE_AT_ONCE_JOBS raised past --jobs: how every submission
was taken in before titan/master/intake.py), then in slices. Half of the rounds' DAGs have no edges (as
S8's waves), half chain every other job to the next.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time

from titan import defaults
from titan.master.config import MasterConfig
from titan.master.loop import Master
from titan.net import jobwire, protocol
from titan_sdk import TitanJob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    at_once = defaults.INTAKE_AT_ONCE_JOBS
    for label, threshold in (("at once (before)", 10 * args.jobs), ("in slices", at_once)):
        defaults.INTAKE_AT_ONCE_JOBS = threshold
        rounds = run(args.jobs, args.rounds)
        longest = [r[0] for r in rounds]
        print(f"{label:>17}: longest turn wall ms median {statistics.median(w for w, _ in longest):.0f} "
              f"(max {max(w for w, _ in longest):.0f}), CPU ms median {statistics.median(c for _, c in longest):.0f}; "
              f"admission turn wall median {statistics.median(r[1][0] for r in rounds):.0f}; longest other "
              f"slice wall median {statistics.median(r[2] for r in rounds):.1f}; turns {rounds[0][3]}", flush=True)
    defaults.INTAKE_AT_ONCE_JOBS = at_once


def run(jobs: int, rounds: int) -> list:
    with tempfile.TemporaryDirectory(prefix="titan-intake-") as data:
        script = f"{data}/null.py"
        with open(script, "w") as handle:
            handle.write("pass\n")
        master = Master(MasterConfig(host="127.0.0.1", port=_free_port(), data_dir=data))
        try:
            return [one_submission(master, script, jobs, n, chained=n % 2 == 1) for n in range(rounds)]
        finally:
            master.close()


def one_submission(master: Master, script: str, jobs: int, n: int, chained: bool) -> tuple:
    """((wall, CPU) of the longest turn, (wall, CPU) of the last turn, the longest other turn's wall, turns)."""
    specs = [TitanJob(f"r{n}-{i}", script, parents=[f"r{n}-{i + 1}"] if chained and i % 2 == 0 else []).to_spec()
             for i in range(jobs)]
    body = protocol.encode({"op": "submit", "rid": f"r{n}", "dag": f"d{n}", **jobwire.submission(specs)})
    turns = [_turn(lambda: master._answer([body], protocol.CLIENT_OPS, master._client_request, "client",
                                          b"bench", "bench", (master.clients, [b"bench"])), master)]
    while master._intake_waiting():
        turns.append(_turn(master._take_in, master))
    others = [wall for wall, _ in turns[:-1]] or [0.0]
    return max(turns), turns[-1], max(others), len(turns)


def _turn(work, master: Master) -> tuple:
    began, cpu = time.perf_counter(), time.thread_time()
    work()
    master._outbox.clear()   # the replies have no one to go to
    master._end_turn()
    return (time.perf_counter() - began) * 1000, (time.thread_time() - cpu) * 1000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
