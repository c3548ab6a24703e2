"""Project archives (deterministic zips, safe extraction) and the master's artifact files, without sockets."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile

import pytest

from titan import defaults
from titan.archives import ArchiveError, safe_extract, zip_folder
from titan.master.artifacts import ArtifactStore
from titan.core.errors import RequestRejected, UnknownArtifact
from titan.net.jobwire import script_digest, split_archive_filename
from titan.worker.archive_cache import ArchiveCache


def make_project(root) -> str:
    (root / "src").mkdir(parents=True)
    (root / "src" / "step.py").write_text("import helper\nprint(helper.VALUE)\n")
    (root / "src" / "helper.py").write_text("VALUE = 42\n")
    (root / "data.bin").write_bytes(bytes(range(256)))
    for cache in ("__pycache__", ".git", ".venv", "src/__pycache__"):
        (root / cache).mkdir(parents=True, exist_ok=True)
        (root / cache / "junk").write_text("cache")
    (root / "src" / "old.pyc").write_bytes(b"\0\0")
    return str(root)


def write_zip(path, entries) -> str:
    """entries: (name, bytes, mode) with mode e.g. stat.S_IFLNK | 0o777 for a symlink."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return str(path)


FILE = stat.S_IFREG | 0o644
LINK = stat.S_IFLNK | 0o777


def test_zip_folder_skips_caches_and_is_the_same_for_the_same_content(tmp_path):
    first = zip_folder(make_project(tmp_path / "a"))
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == ["data.bin", "src/helper.py", "src/step.py"]
    os.utime(tmp_path / "a" / "src" / "step.py", (1, 1))          # timestamps do not change the hash
    second_copy = make_project(tmp_path / "b")
    assert script_digest(zip_folder(str(tmp_path / "a"))) == script_digest(zip_folder(second_copy)) == script_digest(first)
    (tmp_path / "b" / "src" / "helper.py").write_text("VALUE = 43\n")
    assert script_digest(zip_folder(second_copy)) != script_digest(first)


def test_extract_round_trips_a_project_and_keeps_inner_symlinks(tmp_path):
    zip_path = tmp_path / "p.zip"
    zip_path.write_bytes(zip_folder(make_project(tmp_path / "project")))
    safe_extract(str(zip_path), str(tmp_path / "out"))
    assert (tmp_path / "out" / "src" / "helper.py").read_text() == "VALUE = 42\n"
    assert (tmp_path / "out" / "data.bin").read_bytes() == bytes(range(256))
    inner = write_zip(tmp_path / "links.zip", [("a/f.txt", b"x", FILE), ("link", b"a/f.txt", LINK)])
    safe_extract(inner, str(tmp_path / "links"))
    assert (tmp_path / "links" / "link").read_text() == "x"


@pytest.mark.parametrize("entries, bad, why", [
    ([("ok.txt", b"x", FILE), ("../evil.txt", b"x", FILE)], "../evil.txt", "'..'"),
    ([("a/../../evil.txt", b"x", FILE)], "a/../../evil.txt", "'..'"),
    ([("/etc/evil.txt", b"x", FILE)], "/etc/evil.txt", "absolute"),
    ([("..\\evil.txt", b"x", FILE)], "..\\evil.txt", "'..'"),
    ([("escape", b"../../outside", LINK)], "escape", "symlink that points outside"),
    ([("abs", b"/etc", LINK)], "abs", "symlink that points outside"),
    # lexically inside, really outside: "here" is the folder itself, so here/../x is one level up
    ([("d/here", b"..", LINK), ("d/sneak", b"here/../x", LINK)], "d/sneak", "symlink that points outside"),
])
def test_extract_refuses_entries_that_leave_the_folder_naming_them(tmp_path, entries, bad, why):
    zip_path = write_zip(tmp_path / "bad.zip", entries)
    destination = tmp_path / "jail" / "out"
    with pytest.raises(ArchiveError, match=why) as info:
        safe_extract(zip_path, str(destination))
    assert repr(bad) in str(info.value)
    assert not destination.exists()                              # all or nothing
    assert sorted(os.listdir(tmp_path)) == ["bad.zip", "jail"]   # nothing written beside it
    assert os.listdir(tmp_path / "jail") == []


def test_no_file_is_written_through_a_symlink_that_comes_first_in_the_archive(tmp_path):
    """A link to a folder outside, then a file 'inside' that link: written in archive order, the file
    would land outside before the links are checked. Links are made last, so it never does."""
    outside = tmp_path / "outside"
    outside.mkdir()
    zip_path = write_zip(tmp_path / "bad.zip", [("door", str(outside).encode(), LINK),
                                                ("door/planted.txt", b"x", FILE)])
    with pytest.raises(ArchiveError, match="door"):
        safe_extract(zip_path, str(tmp_path / "jail" / "out"))
    assert os.listdir(outside) == []
    assert not (tmp_path / "jail" / "out").exists()


def test_extract_refuses_a_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "not.zip"
    path.write_bytes(b"hello")
    with pytest.raises(ArchiveError, match="not a valid zip"):
        safe_extract(str(path), str(tmp_path / "out"))


@pytest.mark.parametrize("filename, expected", [
    ("project.zip/src/step.py", ("project.zip", "src/step.py")),
    ("team/p.zip/./a.sh", ("team/p.zip", "a.sh")),
])
def test_archive_filenames_split_into_archive_and_path(filename, expected):
    assert split_archive_filename(filename) == expected


@pytest.mark.parametrize("filename", ["step.py", "project.zip/", "project.zip/../x.py", "p.zip/a/../../x.py"])
def test_bad_archive_filenames_are_refused(filename):
    with pytest.raises(ValueError, match=repr(filename).strip("'")[:8]):
        split_archive_filename(filename)


def test_artifact_store_round_trip_in_chunks_and_survives_reopening(tmp_path):
    data = os.urandom(2_500_000)
    sha = hashlib.sha256(data).hexdigest()
    store = ArtifactStore(str(tmp_path / "artifacts"))
    offset = 0
    for start in range(0, len(data), 1_000_000):
        chunk = data[start:start + 1_000_000]
        offset = store.receive_chunk("a1", offset, chunk)
    assert store.receive_chunk("a1", offset - len(chunk), chunk) == offset   # a retried last chunk is harmless
    assert store.finish("a1", sha, "model.bin", "file")["size"] == len(data)
    reopened = ArtifactStore(str(tmp_path / "artifacts"))
    entry = reopened.info("model.bin")
    assert entry["sha256"] == sha
    read, position = b"", 0
    while position < entry["size"]:
        chunk, size = reopened.read(sha, position)
        read, position = read + chunk, position + len(chunk)
    assert read == data and size == len(data)


def test_artifact_store_refuses_damaged_uploads_gaps_and_unknown_names(tmp_path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    store.receive_chunk("a2", 0, b"abc")
    with pytest.raises(RequestRejected, match="expected the chunk at offset 3, got 10"):
        store.receive_chunk("a2", 10, b"def")
    with pytest.raises(RequestRejected, match="not the announced"):
        store.finish("a2", "0" * 64, "x", "file")
    with pytest.raises(UnknownArtifact, match="no artifact named 'nothing-here'"):
        store.info("nothing-here")
    with pytest.raises(UnknownArtifact, match="upload it first"):
        store.finish(None, "1" * 64, "x", "file")
    with pytest.raises(RequestRejected, match="upload id"):
        store.receive_chunk("../../etc", 0, b"x")


def dispatch(job_id: str, sha: str) -> dict:
    return {"op": "dispatch", "job": {"job_id": job_id, "archive": sha}, "attempt": 1}


def test_worker_cache_fetches_once_for_two_jobs_and_extracts(tmp_path):
    data = zip_folder(make_project(tmp_path / "project"))
    sha = script_digest(data)
    cache = ArchiveCache(str(tmp_path / "cache"))
    first = cache.wait_for(sha, dispatch("a", sha), now=0.0)
    assert first == {"op": "fetch_archive", "sha256": sha, "offset": 0}
    assert cache.wait_for(sha, dispatch("b", sha), now=0.0) is None          # already on its way
    request, outcome = cache.on_chunk({"sha256": sha, "offset": 0, "size": len(data), "data": data[:100]}, 1.0)
    assert request == {"op": "fetch_archive", "sha256": sha, "offset": 100} and outcome is None
    request, outcome = cache.on_chunk({"sha256": sha, "offset": 100, "size": len(data), "data": data[100:]}, 2.0)
    waiting, folder, error = outcome
    assert [d["job"]["job_id"] for d in waiting] == ["a", "b"] and error is None
    assert cache.ready(sha) == folder and os.path.isfile(os.path.join(folder, "src", "step.py"))
    assert cache.fetches_started == 1


def test_worker_cache_fails_the_waiting_jobs_of_a_malicious_archive(tmp_path):
    data = open(write_zip(tmp_path / "bad.zip", [("../evil.py", b"x", FILE)]), "rb").read()
    sha = script_digest(data)
    cache = ArchiveCache(str(tmp_path / "cache"))
    cache.wait_for(sha, dispatch("a", sha), now=0.0)
    _, (waiting, folder, error) = cache.on_chunk({"sha256": sha, "offset": 0, "size": len(data), "data": data}, 1)
    assert folder is None and "'../evil.py'" in error and len(waiting) == 1
    assert cache.ready(sha) is None


def test_worker_cache_asks_again_when_an_answer_is_overdue_and_gives_up_in_the_end(tmp_path):
    sha = "ab" * 32
    cache = ArchiveCache(str(tmp_path / "cache"))
    cache.wait_for(sha, dispatch("a", sha), now=0.0)
    assert cache.stale_requests(now=1.0) == []
    assert cache.stale_requests(now=defaults.ARCHIVE_FETCH_RETRY_S + 1) == [
        {"op": "fetch_archive", "sha256": sha, "offset": 0}]
    assert cache.given_up(now=defaults.ARCHIVE_FETCH_GIVE_UP_S - 1) == []
    [(waiting, folder, error)] = cache.given_up(now=defaults.ARCHIVE_FETCH_GIVE_UP_S + 1)
    assert folder is None and "arrived from the master" in error and waiting[0]["job"]["job_id"] == "a"
    assert cache.waiting_jobs() == [] and not os.listdir(tmp_path / "cache")


def test_worker_cache_keeps_only_the_newest_attempt_of_a_waiting_job(tmp_path):
    sha = "cd" * 32
    cache = ArchiveCache(str(tmp_path / "cache"))
    cache.wait_for(sha, dispatch("a", sha), now=0.0)
    cache.wait_for(sha, dispatch("a", sha), now=0.0)            # a repeated dispatch is held once
    newer = {**dispatch("a", sha), "attempt": 2}
    cache.drop_other_attempts("a", 2)
    cache.wait_for(sha, newer, now=0.0)
    assert cache.waiting_jobs() == [("a", 2)]
    assert cache.drop_job("a", 2) and not cache.drop_job("a", 2)
