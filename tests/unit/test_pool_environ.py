"""A pool member's environment between jobs (worker/pool.py): a job's variables stay set after it only
when it left them as given, and the next job sees exactly the baseline with its own variables."""

from __future__ import annotations

import os

import pytest

from titan.worker.pool import Baseline, JobSnapshot, switch_environ


@pytest.fixture
def baseline():
    """Taken in the test itself (pytest changes PYTEST_CURRENT_TEST between set-up and call)."""
    saved = dict(os.environ)
    os.environ["POOL_TEST_SHARED"] = "baseline"
    os.environ.pop("POOL_TEST_ONLY_FIRST", None)
    try:
        yield Baseline
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_job(baseline: Baseline, left: dict, given: dict, job=lambda: None) -> dict:
    """What the member does around one job; the variables it leaves set for the next."""
    snapshot = JobSnapshot(baseline)
    snapshot.give_environ(left, given)
    assert dict(os.environ) == {**baseline.environ, **given}
    job()
    snapshot._restore_environ()
    return snapshot.environ_left


def test_the_next_job_sees_the_baseline_with_only_its_own_variables(baseline):
    baseline = baseline()
    first = {"TITAN_JOB_ID": "a", "POOL_TEST_ONLY_FIRST": "1", "POOL_TEST_SHARED": "first"}
    left = run_job(baseline, {}, first)
    assert left == first
    left = run_job(baseline, left, {"TITAN_JOB_ID": "b"})   # asserts its environment inside
    assert "POOL_TEST_ONLY_FIRST" not in os.environ
    assert os.environ["POOL_TEST_SHARED"] == "baseline"
    switch_environ(baseline.environ, left, {})
    assert dict(os.environ) == baseline.environ


def test_a_job_that_changes_its_environment_leaves_the_baseline_behind(baseline):
    baseline = baseline()
    def job():
        os.environ["POOL_TEST_SET_BY_JOB"] = "1"
        del os.environ["POOL_TEST_SHARED"]

    left = run_job(baseline, {}, {"TITAN_JOB_ID": "a"}, job)
    assert left == {}
    assert dict(os.environ) == baseline.environ
    run_job(baseline, left, {"TITAN_JOB_ID": "b"})
