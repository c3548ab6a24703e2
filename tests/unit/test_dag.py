"""validate_dag: what a submission must look like before anything of it is queued."""

from __future__ import annotations

import pytest

from titan.core.dag import STEP_JOBS, parents_outside, validate_dag, validation_steps
from titan.core.errors import InvalidDag, TitanError
from titan.core.jobs import JobSpec


def spec(job_id: str, parents=()) -> JobSpec:
    return JobSpec(job_id=job_id, filename=f"{job_id}.py", parents=tuple(parents))


def nothing_known(job_id: str) -> bool:
    return False


def assert_parents_first(ordered, specs):
    assert sorted(s.job_id for s in ordered) == sorted(s.job_id for s in specs)
    position = {s.job_id: i for i, s in enumerate(ordered)}
    for s in specs:
        for parent in s.parents:
            if parent in position:
                assert position[parent] < position[s.job_id], f"{parent} must come before {s.job_id}"


# ----------------------------------------------------------------- accepted shapes


def test_single_job_is_returned_as_is():
    only = spec("a")
    assert validate_dag("d", [only], nothing_known) == [only]


def test_returns_the_same_spec_objects_in_topological_order():
    # Given children before their parents, the result must put every parent first.
    specs = [spec("d", ["b", "c"]), spec("c", ["a"]), spec("b", ["a"]), spec("a"), spec("e", ["d"])]
    ordered = validate_dag("diamond", specs, nothing_known)
    assert_parents_first(ordered, specs)
    assert all(any(o is s for s in specs) for o in ordered)
    assert ordered[0].job_id == "a" and ordered[-1].job_id == "e"


def test_long_chain_given_backwards_comes_out_forwards():
    ids = [f"j{i}" for i in range(20)]
    specs = [spec(ids[i], [ids[i - 1]] if i else []) for i in range(20)]
    ordered = validate_dag("", list(reversed(specs)), nothing_known)
    assert [s.job_id for s in ordered] == ids


def test_independent_jobs_all_come_back():
    specs = [spec(x) for x in "pqrst"]
    ordered = validate_dag("", specs, nothing_known)
    assert sorted(s.job_id for s in ordered) == list("pqrst")


def test_parent_may_be_a_job_the_master_already_knows():
    asked = []

    def known(job_id):
        asked.append(job_id)
        return job_id == "old"

    specs = [spec("new", ["old"]), spec("newer", ["new", "old"])]
    ordered = validate_dag("d", specs, known)
    # The known parent is not part of the result: only this submission's jobs are returned.
    assert [s.job_id for s in ordered] == ["new", "newer"]
    assert "old" in asked
    # A parent inside the submission is fine without the master knowing it.
    assert "new" not in asked


def test_duplicate_parent_entries_are_harmless():
    specs = [spec("a"), spec("b", ["a", "a"])]
    assert [s.job_id for s in validate_dag("", specs, nothing_known)] == ["a", "b"]


# ----------------------------------------------------------------- rejected shapes


def test_empty_dag_is_rejected():
    with pytest.raises(InvalidDag, match="no jobs"):
        validate_dag("d", [], nothing_known)


def test_unknown_parent_names_the_job_and_the_parent():
    specs = [spec("a"), spec("b", ["a", "ghost"])]
    with pytest.raises(InvalidDag) as info:
        validate_dag("d", specs, nothing_known)
    message = str(info.value)
    assert "'b'" in message and "'ghost'" in message
    assert "'a'" not in message.split("parent")[-1]   # the real parent is not blamed
    assert set(info.value.details["jobs"]) == {"b", "ghost"}


def test_parent_unknown_to_the_master_is_rejected():
    # is_known_job says no: the parent is neither in the submission nor on the master.
    with pytest.raises(InvalidDag, match="ghost"):
        validate_dag("", [spec("x", ["ghost"])], lambda job_id: job_id == "something-else")


def test_duplicate_ids_are_named():
    specs = [spec("a"), spec("b"), spec("a"), spec("c"), spec("b")]
    with pytest.raises(InvalidDag) as info:
        validate_dag("d", specs, nothing_known)
    assert "duplicate" in str(info.value)
    assert "a" in str(info.value) and "b" in str(info.value)
    assert "c" not in str(info.value).split(":")[-1]
    assert info.value.details["jobs"] == ["a", "b"]


def test_duplicate_id_is_rejected_even_if_the_master_knows_it():
    with pytest.raises(InvalidDag, match="duplicate"):
        validate_dag("d", [spec("a"), spec("a")], lambda job_id: True)


def test_self_dependency_is_rejected_and_named():
    with pytest.raises(InvalidDag) as info:
        validate_dag("d", [spec("ok"), spec("loop", ["loop"])], nothing_known)
    assert "'loop'" in str(info.value) and "itself" in str(info.value)
    assert info.value.details["jobs"] == ["loop"]


def test_self_dependency_is_rejected_even_if_the_master_knows_the_id():
    with pytest.raises(InvalidDag, match="itself"):
        validate_dag("d", [spec("loop", ["loop"])], lambda job_id: True)


def test_cycle_names_every_job_in_it_and_no_other():
    specs = [spec("a", ["c"]), spec("b", ["a"]), spec("c", ["b"]), spec("outside"), spec("tail", ["outside"])]
    with pytest.raises(InvalidDag) as info:
        validate_dag("loopy", specs, nothing_known)
    message = str(info.value)
    assert "cycle" in message
    for member in ("a", "b", "c"):
        assert member in info.value.details["jobs"]
    assert set(info.value.details["jobs"]) == {"a", "b", "c"}
    cycle_text = message.split("cycle:")[1]
    assert "outside" not in cycle_text and "tail" not in cycle_text
    # The path closes on itself: "x -> y -> z -> x".
    steps = [s.strip() for s in cycle_text.split("->")]
    assert len(steps) == 4 and steps[0] == steps[-1]
    assert set(steps) == {"a", "b", "c"}


def test_two_job_cycle():
    with pytest.raises(InvalidDag) as info:
        validate_dag("", [spec("x", ["y"]), spec("y", ["x"])], nothing_known)
    assert set(info.value.details["jobs"]) == {"x", "y"}


def test_cycle_hanging_below_a_known_job_is_still_a_cycle():
    specs = [spec("a", ["old", "b"]), spec("b", ["a"])]
    with pytest.raises(InvalidDag, match="cycle"):
        validate_dag("", specs, lambda job_id: job_id == "old")


def test_message_says_which_dag():
    with pytest.raises(InvalidDag, match="DAG 'nightly'"):
        validate_dag("nightly", [spec("a", ["a"])], nothing_known)
    with pytest.raises(InvalidDag, match="submission"):
        validate_dag("", [spec("a", ["a"])], nothing_known)


def test_invalid_dag_is_a_typed_titan_error():
    with pytest.raises(InvalidDag) as info:
        validate_dag("d", [], nothing_known)
    assert isinstance(info.value, TitanError) and isinstance(info.value, ValueError)
    assert info.value.kind == "InvalidDag"
    assert info.value.message == str(info.value)


# ----------------------------------------------------------------- in steps (a large submission over several turns)


def _run_steps(steps) -> tuple:
    """(how many times it yielded, what it returned)."""
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return yields, done.value
        yields += 1


def test_validation_in_steps_yields_every_few_hundred_jobs_and_orders_as_validate_dag_does():
    specs = [spec(f"j{i}", [f"j{i + 1}"] if i % 2 == 0 else []) for i in range(5 * STEP_JOBS)]
    yields, ordered = _run_steps(validation_steps("big", specs, nothing_known))
    assert yields >= 5 * 3   # parents checked, graph built and sorted, each in steps
    assert [s.job_id for s in ordered] == [s.job_id for s in validate_dag("big", specs, nothing_known)]
    assert_parents_first(ordered, specs)


def test_validation_in_steps_finds_a_cycle_at_the_end_of_a_large_dag():
    specs = [spec(f"j{i}") for i in range(3 * STEP_JOBS)] + [spec("x", ["y"]), spec("y", ["x"])]
    steps = validation_steps("loopy", specs, nothing_known)
    with pytest.raises(InvalidDag, match="DAG 'loopy' has a cycle: (x -> y -> x|y -> x -> y)"):
        _run_steps(steps)


def test_parents_outside_are_the_ones_not_submitted_with_it():
    specs = [spec("a", ["old"]), spec("b", ["a", "older"])]
    assert parents_outside(specs) == {"old", "older"}
