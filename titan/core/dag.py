"""DAG validation and ordering with networkx, before anything of a submission is queued."""

from __future__ import annotations

from collections import Counter
from typing import Callable, Generator, Iterable, List, Sequence

import networkx as nx

from titan.core.errors import InvalidDag
from titan.core.jobs import JobSpec


# Jobs looked at between two yields of validation_steps: a few milliseconds of work at most.
STEP_JOBS = 500


def validate_dag(name: str, specs: Sequence[JobSpec], is_known_job: Callable[[str], bool]) -> List[JobSpec]:
    """Return the specs in an order where every parent comes before its children.

    A parent may be another job of this submission or a job the master already knows
    (so an agent can hang a new job under an existing one). Raises InvalidDag naming the offenders.
    """
    steps = validation_steps(name, specs, is_known_job)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def validation_steps(name: str, specs: Sequence[JobSpec],
                     is_known_job: Callable[[str], bool]) -> Generator[None, None, List[JobSpec]]:
    """validate_dag in steps: yields after every STEP_JOBS jobs (or edges) looked at, so a caller can do
    other work between steps; returns the order (StopIteration.value) or raises InvalidDag."""
    label = f"DAG {name!r}" if name else "submission"
    if not specs:
        raise InvalidDag(f"{label} has no jobs", dag=name)
    _check_duplicates(label, specs)
    yield
    own_ids = {spec.job_id for spec in specs}
    for start in range(0, len(specs), STEP_JOBS):
        _check_parents(label, specs[start:start + STEP_JOBS], own_ids, is_known_job)
        yield
    if not any(spec.parents for spec in specs):   # no edges: the order given is one (10,000 jobs build no graph)
        return list(specs)
    graph = nx.DiGraph()
    for start in range(0, len(specs), STEP_JOBS):
        _add_to_graph(graph, specs[start:start + STEP_JOBS])
        yield
    order = []
    try:
        for job_id in nx.topological_sort(graph):   # a generator: it raises only once it meets the cycle
            order.append(job_id)
            if len(order) % STEP_JOBS == 0:
                yield
    except nx.NetworkXUnfeasible:   # only then is a cycle searched for, to name it
        _raise_cycle(label, graph)
    by_id = {spec.job_id: spec for spec in specs}
    return [by_id[job_id] for job_id in order if job_id in by_id]


def _check_duplicates(label: str, specs: Iterable[JobSpec]) -> None:
    counts = Counter(spec.job_id for spec in specs)
    duplicates = sorted(job_id for job_id, n in counts.items() if n > 1)
    if duplicates:
        raise InvalidDag(f"{label} has duplicate job ids: {', '.join(duplicates)}", jobs=duplicates)


def _check_parents(label: str, specs: Sequence[JobSpec], own_ids: set,
                   is_known_job: Callable[[str], bool]) -> None:
    for spec in specs:
        if spec.job_id in spec.parents:
            raise InvalidDag(f"{label}: job {spec.job_id!r} lists itself as a parent", jobs=[spec.job_id])
        unknown = [p for p in spec.parents if p not in own_ids and not is_known_job(p)]
        if unknown:
            raise InvalidDag(
                f"{label}: job {spec.job_id!r} has unknown parent(s) {', '.join(map(repr, unknown))}"
                " (not in this submission and never submitted before)",
                jobs=[spec.job_id, *unknown])


def _add_to_graph(graph: nx.DiGraph, specs: Sequence[JobSpec]) -> None:
    graph.add_nodes_from(spec.job_id for spec in specs)
    graph.add_edges_from((parent, spec.job_id) for spec in specs for parent in spec.parents)


def parents_outside(specs: Sequence[JobSpec]) -> set:
    """The parents a submission names that are not among its own jobs: known jobs when it was checked,
    to look for again when a submission checked over several turns is admitted."""
    own_ids = {spec.job_id for spec in specs}
    return {parent for spec in specs for parent in spec.parents if parent not in own_ids}


def _raise_cycle(label: str, graph: nx.DiGraph) -> None:
    cycle = nx.find_cycle(graph)
    members = [edge[0] for edge in cycle]
    path = " -> ".join(members + [members[0]])
    raise InvalidDag(f"{label} has a cycle: {path}", jobs=members)
