"""The reply cache (titan/master/replies.py): a reply naming runs goes with the last of them; one naming
none only as the oldest; the job ids a result names."""

from __future__ import annotations

from titan.master.replies import ReplyCache, named_jobs


def test_a_reply_goes_when_the_last_run_it_names_is_forgotten():
    cache = ReplyCache()
    cache.put("c/submit", b"dag", [1, 2, 3])
    cache.put("c/cancel", b"cancelled 2", [2])
    cache.put("s/put", b"stored")   # names no run
    assert cache.forgot([2]) == ["c/cancel"]
    assert cache.get("c/submit") == b"dag" and cache.get("c/cancel") is None
    assert cache.forgot([1, 9]) == [] and cache.get("c/submit") == b"dag"
    assert cache.forgot([3]) == ["c/submit"]
    assert cache.get("c/submit") is None and cache.get("s/put") == b"stored" and len(cache) == 1
    assert not cache._by_seq and not cache._named


def test_a_reply_gone_as_the_oldest_is_not_dropped_twice():
    cache = ReplyCache(size=2)
    cache.put("a", b"1", [1])
    cache.put("b", b"2", [2])
    cache.put("c", b"3", [3])   # "a" goes as the oldest
    assert cache.get("a") is None and len(cache) == 2
    assert cache.forgot([1]) == []
    cache.put("a", b"again", [4])   # the same request id asked again, naming another run: "b" goes
    assert cache.forgot([1, 2]) == [] and cache.get("a") == b"again"
    assert cache.forgot([3, 4]) == ["c", "a"] and len(cache) == 0


def test_named_jobs_reads_job_descriptions_submissions_and_dags():
    assert named_jobs({"job_id": "a", "state": "CANCELLED"}) == ["a"]
    assert named_jobs({"dag": "pipe", "jobs": ["a", "b"]}) == ["a", "b"]
    assert named_jobs({"dag": "pipe", "run": "pipe#2", "jobs": [{"job_id": "a"}, {"job_id": "b"}]}) == ["a", "b"]
    assert named_jobs({"forgotten": 3, "to_forget": 0}) == [] and named_jobs(7) == [] and named_jobs(None) == []
