"""A job whose attempts cost `max_worker_losses` workers (lost while running it: silent, or unreachable)
is FAILED with that reason instead of being queued for the next worker, as Dask's allowed-failures does.
A worker that leaves by choice costs nothing. Fake clock (sim.py), validate() after every step."""

from __future__ import annotations

from titan.core.scheduler import Scheduler
from tests.unit.sim import F, Q, R, Sim, events, spec


def losing_sim(max_worker_losses: int = 3) -> Sim:
    sim = Sim(dead_after=5.0)
    sim.s = Scheduler(worker_dead_after=5.0, max_worker_losses=max_worker_losses)
    return sim


def lose_its_worker(sim: Sim, job_id: str, how: str = "silence") -> list:
    """The worker running `job_id` is lost: it goes silent past dead_after, or is found unreachable."""
    worker_id = sim.run(job_id).worker_id
    if how == "unreachable":
        return sim.leave(worker_id, reason="unreachable: Host unreachable", lost=True)
    sim.now += 6.0
    for other in sim.s.workers:
        if other != worker_id:
            sim.seen(other)
    return sim.tick()


def test_a_job_that_costs_three_workers_fails_with_that_reason():
    sim = losing_sim()
    sim.submit(spec("killer", retries=5))
    for n in range(1, 4):
        sim.join(f"w{n}")
        assert sim.state("killer") == R and sim.run("killer").worker_id == f"w{n}"
        effects = lose_its_worker(sim, "killer", how="silence" if n % 2 else "unreachable")
        if n < 3:
            assert sim.state("killer") == Q
    assert sim.state("killer") == F
    reason = sim.run("killer").reason
    assert "3 workers" in reason and "--max-worker-losses" in reason, reason
    assert sim.run("killer").failures == 0, "losing workers does not use up retries"
    assert [e.body["state"] for e in events(effects, "job.FAILED")] == ["FAILED"]


def test_the_limit_is_a_setting():
    sim = losing_sim(max_worker_losses=1)
    sim.submit(spec("killer"))
    sim.join("w1")
    lose_its_worker(sim, "killer")
    assert sim.state("killer") == F and "1 worker" in sim.run("killer").reason


def test_a_failed_job_cancels_its_children_as_any_failure_does():
    sim = losing_sim(max_worker_losses=1)
    sim.submit(spec("killer"), spec("after", parents=["killer"]), dag="d")
    sim.join("w1")
    lose_its_worker(sim, "killer")
    assert sim.states("killer", "after") == [F, sim.state("after")] and sim.state("after").value == "CANCELLED"


def test_a_worker_that_leaves_by_choice_costs_nothing():
    sim = losing_sim(max_worker_losses=1)
    sim.submit(spec("j"))
    for n in range(1, 4):
        sim.join(f"w{n}")
        sim.leave(f"w{n}", reason="it shut down")
        assert sim.state("j") == Q
    sim.join("w9")
    sim.finish("j")
    assert sim.state("j").value == "COMPLETED"


def test_other_jobs_on_a_lost_worker_count_the_loss_too():
    """As in Dask: every job running on a worker that died is suspected once."""
    sim = losing_sim(max_worker_losses=2)
    sim.submit(spec("a"), spec("b"))
    sim.join("w1", slots=2)
    lose_its_worker(sim, "a")
    sim.join("w2", slots=1)
    assert sim.state("a") == R and sim.state("b") == Q
    lose_its_worker(sim, "a")
    assert sim.state("a") == F and sim.state("b") == Q
    sim.join("w3")
    sim.finish("b")
    assert sim.state("b").value == "COMPLETED"
