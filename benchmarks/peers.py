"""`python -m benchmarks --peers`: five shapes of real work (T1-T5) on Titan, once per isolation, and on
Ray and Dask when they are installed (`pip install -e '.[peers]'`), in one run on one layout (8 slots:
2 Titan workers x 4 slots, Ray num_cpus=8, Dask 2 worker processes x 4 threads), with the ratios.

  T1  5,000 independent tasks, tasks/s          T4  1 -> 1,000 -> 1, seconds
  T2  200 tasks that each start `python noop.py`, tasks/s
  T3  a chain of 200, ms per link               T5  one task, submit to result, ms

Peers run a Python function per task; Titan runs a script per job (`print('ok')`). For T2, Titan with
isolation="process" runs noop.py itself as the job; with fork and pool the job starts it, as the peers'
tasks do. Medians of --runs runs (default 3) after a warm-up.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

from benchmarks.__main__ import Bench, Sizes
from titan.cluster import LocalCluster, WorkerSpec

ISOLATIONS = ("pool", "fork", "process")
PEERS = {"ray": "ray", "dask": "distributed"}   # peer -> the module that says it is installed
SHAPES = {"T1": ("tasks/s", True), "T2": ("tasks/s", True), "T3": ("ms/link", False),
          "T4": ("s", False), "T5": ("ms", False)}       # shape -> (unit, higher is better)
PEER_TIMEOUT_S = 1800


@dataclass
class PeerSizes:
    T1: int = 5_000
    T2: int = 200
    T3: int = 200
    T4: int = 1_000
    T5: int = 30
    runs: int = 3


QUICK_PEERS = PeerSizes(T1=40, T2=4, T3=5, T4=10, T5=3, runs=1)


def titan_shapes(isolation: str, sizes: PeerSizes, scratch: str) -> Dict[str, List[float]]:
    ok, noop, starts_noop = _scripts(scratch)
    workers = [WorkerSpec(f"peers-{n}", slots=4, extra_args=("--isolation", isolation)) for n in (1, 2)]
    with LocalCluster(workers=workers, data_dir=os.path.join(scratch, f"data-{isolation}")) as cluster:
        bench = Bench(cluster, Sizes(chain=sizes.T3, fan=sizes.T4, single_runs=sizes.T5), ok)
        fresh = Bench(cluster, Sizes(), noop if isolation == "process" else starts_noop)
        shapes = {"T1": lambda: bench.independent(sizes.T1), "T2": lambda: fresh.independent(sizes.T2),
                  "T3": bench.chain, "T4": bench.fan, "T5": lambda: statistics.median(bench.single())}
        bench.independent(min(sizes.T1, 100))   # warm-up: every slot has run a job
        fresh.independent(min(sizes.T2, 8))
        figures = {shape: [run() for _ in range(sizes.runs)] for shape, run in shapes.items()}
        bench.client.close()
        fresh.client.close()
    return figures


def _scripts(scratch: str):
    paths = [os.path.join(scratch, name) for name in ("ok.py", "noop.py", "starts_noop.py")]
    bodies = ["print('ok')\n", "pass\n",
              f"import subprocess, sys\nsys.exit(subprocess.run([sys.executable, {paths[1]!r}]).returncode)\n"]
    for path, body in zip(paths, bodies):
        with open(path, "w") as handle:
            handle.write(body)
    return paths


def peer_shapes(peer: str, sizes: PeerSizes, scratch: str) -> Dict[str, List[float]]:
    """Run in a process (and session) of its own; whatever it leaves is killed with its group."""
    settings = {**asdict(sizes), "noop_script": _scripts(scratch)[1]}
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.peer_tasks", peer, json.dumps(settings)],
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=PEER_TIMEOUT_S)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the {peer} benchmark failed (exit code {process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def run(sizes: PeerSizes, scratch: str, systems: Optional[List[str]] = None) -> Dict[str, Dict[str, List[float]]]:
    """{system: {shape: figures}}; a peer that is not installed is skipped, saying so."""
    results: Dict[str, Dict[str, List[float]]] = {}
    for isolation in ISOLATIONS:
        if systems is None or f"titan-{isolation}" in systems or "titan" in systems:
            print(f"titan, isolation={isolation} ...", flush=True)
            results[f"titan-{isolation}"] = titan_shapes(isolation, sizes, scratch)
    for peer, module in PEERS.items():
        if systems is not None and peer not in systems:
            continue
        if importlib.util.find_spec(module) is None:
            print(f"{peer}: not installed, skipped (pip install -e '.[peers]')", flush=True)
            continue
        print(f"{peer} ...", flush=True)
        results[peer] = peer_shapes(peer, sizes, scratch)
    return results


def table(results: Dict[str, Dict[str, List[float]]]) -> str:
    """Medians, and each Titan figure as a multiple of the best peer's (above 1: Titan is ahead)."""
    systems = list(results)
    peers = [s for s in systems if not s.startswith("titan")]
    lines = [f"{'shape':<6} {'unit':<8}" + "".join(f"{s:>22}" for s in systems)]
    for shape, (unit, higher_better) in SHAPES.items():
        medians = {s: statistics.median(results[s][shape]) for s in systems}
        best_peer = _best([medians[p] for p in peers], higher_better)
        cells = []
        for system in systems:
            ratio = ""
            if system.startswith("titan") and best_peer:
                times = medians[system] / best_peer if higher_better else best_peer / medians[system]
                ratio = f" ({times:.2f}x)"
            cells.append(f"{medians[system]:,.2f}{ratio}".rjust(22))
        lines.append(f"{shape:<6} {unit:<8}" + "".join(cells))
    if peers:
        lines.append("(Nx): Titan's figure as a multiple of the best peer's on that shape; above 1, Titan is ahead")
    return "\n".join(lines)


def _best(values: List[float], higher_better: bool) -> Optional[float]:
    if not values:
        return None
    return max(values) if higher_better else min(values)
