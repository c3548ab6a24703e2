"""choose_worker: the capability-matching, least-loaded balancer, as a pure function."""

from __future__ import annotations

import itertools

import pytest

from titan.core.matching import WorkerView, anyone_offers, choose_worker, offered_capabilities

GENERAL = "GENERAL"


def worker(name: str, caps=(), slots: int = 2, running: int = 0) -> WorkerView:
    """A worker as the scheduler builds it: GENERAL is always among its capabilities."""
    return WorkerView(worker_id=f"id-{name}", name=name, capabilities=frozenset(caps) | {GENERAL},
                      slots=slots, running={f"{name}-job{i}" for i in range(running)})


def every_order(workers):
    return list(itertools.permutations(workers))


def test_view_counts_free_slots_and_load():
    w = worker("w", slots=4, running=1)
    assert w.free_slots == 3
    assert w.load == pytest.approx(0.25)
    assert worker("p", caps=["GPU", "HIGH_MEM"]).special_capabilities == 2
    assert worker("q").special_capabilities == 0


# ----------------------------------------------------------------- capability routing


def test_job_needing_a_capability_goes_only_to_a_worker_offering_it():
    plain, gpu = worker("plain"), worker("gpu", caps=["GPU"])
    for order in every_order([plain, gpu]):
        assert choose_worker("GPU", order) is gpu


def test_capable_worker_is_chosen_even_when_busier_than_an_incapable_one():
    plain = worker("plain", slots=8, running=0)
    gpu = worker("gpu", caps=["GPU"], slots=4, running=3)
    assert choose_worker("GPU", [plain, gpu]) is gpu


def test_general_job_may_run_on_any_worker():
    gpu = worker("gpu", caps=["GPU"])
    assert gpu.can_run(GENERAL)
    assert choose_worker(GENERAL, [gpu]) is gpu


def test_capabilities_are_exact_tags():
    gpu = worker("gpu", caps=["GPU"])
    assert choose_worker("gpu", [gpu]) is None
    assert choose_worker("GPU_BIG", [gpu]) is None


# ----------------------------------------------------------------- load


def test_least_loaded_capable_worker_wins():
    half = worker("half", caps=["GPU"], slots=2, running=1)       # 50 %
    quarter = worker("quarter", caps=["GPU"], slots=4, running=1)  # 25 %
    most = worker("most", caps=["GPU"], slots=4, running=3)        # 75 %
    for order in every_order([half, quarter, most]):
        assert choose_worker("GPU", order) is quarter


def test_least_loaded_general_worker_wins_among_plain_workers():
    busy = worker("busy", slots=4, running=3)
    idle = worker("idle", slots=4, running=0)
    some = worker("some", slots=4, running=2)
    for order in every_order([busy, idle, some]):
        assert choose_worker(GENERAL, order) is idle


def test_choice_does_not_depend_on_the_order_workers_are_listed():
    # Two workers tied on every measure must still give one stable answer.
    a, b = worker("a", slots=2), worker("b", slots=2)
    answers = {choose_worker(GENERAL, order).name for order in every_order([a, b])}
    assert len(answers) == 1


# ----------------------------------------------------------------- GENERAL keeps special workers free


def test_general_job_prefers_a_plain_worker_over_an_idle_gpu_worker():
    plain = worker("plain", slots=2, running=1)
    gpu = worker("gpu", caps=["GPU"], slots=2, running=0)
    for order in every_order([plain, gpu]):
        assert choose_worker(GENERAL, order) is plain


def test_general_job_prefers_fewer_special_capabilities():
    two = worker("two", caps=["GPU", "HIGH_MEM"])
    one = worker("one", caps=["HIGH_MEM"])
    for order in every_order([two, one]):
        assert choose_worker(GENERAL, order) is one


def test_general_job_uses_a_special_worker_when_plain_ones_are_full():
    plain = worker("plain", slots=1, running=1)
    gpu = worker("gpu", caps=["GPU"], slots=1, running=0)
    assert choose_worker(GENERAL, [plain, gpu]) is gpu


# ----------------------------------------------------------------- no answer


def test_no_free_slot_gives_none():
    full_gpu = worker("gpu", caps=["GPU"], slots=2, running=2)
    full_plain = worker("plain", slots=1, running=1)
    assert choose_worker("GPU", [full_gpu, full_plain]) is None
    assert choose_worker(GENERAL, [full_gpu, full_plain]) is None


def test_no_capable_worker_gives_none_even_with_free_slots():
    assert choose_worker("TPU", [worker("plain", slots=8), worker("gpu", caps=["GPU"], slots=8)]) is None


def test_no_workers_gives_none():
    assert choose_worker(GENERAL, []) is None
    assert choose_worker("GPU", []) is None


def test_accepts_any_iterable_of_workers():
    gpu = worker("gpu", caps=["GPU"])
    assert choose_worker("GPU", (w for w in [worker("plain"), gpu])) is gpu


# ----------------------------------------------------------------- what is on offer


def test_anyone_offers_ignores_free_slots():
    full_gpu = worker("gpu", caps=["GPU"], slots=1, running=1)
    assert anyone_offers("GPU", [full_gpu])
    assert not anyone_offers("TPU", [full_gpu])
    assert not anyone_offers(GENERAL, [])


def test_offered_capabilities_are_sorted_unique_and_include_general():
    workers = [worker("a", caps=["GPU"]), worker("b", caps=["HIGH_MEM", "GPU"])]
    assert offered_capabilities(workers) == ["GENERAL", "GPU", "HIGH_MEM"]
    assert offered_capabilities([]) == ["GENERAL"]
