"""ArtifactStore.sweep with a fake clock: a blob no name points at and nothing pins goes once it has been
so for the grace period, a few at a time; a re-pointed name leaves its old content to age out; asking
for a blob (has_blob) starts its grace again. The same story runs on PostgreSQL (tests/postgres)."""

from __future__ import annotations

import hashlib
import os

from titan.master.artifacts import ArtifactStore

GRACE = 10.0
NOTHING_PINNED = frozenset().__contains__


def put(store: ArtifactStore, name: str, data: bytes) -> str:
    """Upload `data` under `name` as a client does; its sha256."""
    sha = hashlib.sha256(data).hexdigest()
    upload_id = os.urandom(8).hex()
    store.receive_chunk(upload_id, 0, data)
    store.finish(upload_id, sha, name, "file")
    return sha


def sweep(store: ArtifactStore, now: float, pinned=NOTHING_PINNED, look: int = 100, remove: int = 100) -> int:
    return store.sweep(now, GRACE, pinned, look, remove)


def repointed_content_ages_out(store: ArtifactStore) -> None:
    old = put(store, "model.bin", b"version 1")
    new = put(store, "model.bin", b"version 2")
    kept = put(store, "other.bin", b"other")
    assert sweep(store, 0.0) == 0                       # old is unreferenced from now on
    assert sweep(store, GRACE - 1) == 0
    assert store.has(old)                               # a client asks: it may be about to name it
    assert sweep(store, GRACE + 0.5) == 0               # so its grace began again here
    assert sweep(store, 2 * GRACE) == 0
    assert sweep(store, 2 * GRACE + 1) == 1
    assert not store.has(old) and store.has(new) and store.has(kept)
    assert store.info("model.bin")["sha256"] == new
    stats = store.stats()
    assert (stats["blobs_kept"], stats["blobs_removed"]) == (2, 1)


def pinned_content_stays_until_unpinned(store: ArtifactStore) -> None:
    pinned = put(store, "project.zip", b"archive 1")
    put(store, "project.zip", b"archive 2")
    pins = {pinned}
    for now in (0.0, GRACE, 3 * GRACE):
        assert sweep(store, now, pins.__contains__) == 0
    pins.clear()                                         # the last run that ran from it was forgotten
    assert sweep(store, 3 * GRACE + 1, pins.__contains__) == 0
    assert sweep(store, 4 * GRACE + 1, pins.__contains__) == 1
    assert not store.has(pinned)


def test_repointed_content_ages_out_and_has_blob_starts_the_grace_again(tmp_path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    repointed_content_ages_out(store)
    assert sorted(os.listdir(tmp_path / "artifacts" / "blobs")) == sorted(store._held)


def test_pinned_content_stays_until_no_run_kept_pins_it(tmp_path):
    pinned_content_stays_until_unpinned(ArtifactStore(str(tmp_path / "artifacts")))


def test_a_sweep_looks_at_and_removes_a_bounded_number_of_blobs(tmp_path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    for version in range(8):
        put(store, "x", f"version {version}".encode())
    assert sweep(store, 0.0, look=3) == 0                # 3 of the 7 old versions seen unreferenced
    assert sweep(store, 0.0, look=100) == 0              # the rest, and the one still named
    removed = [sweep(store, GRACE, remove=2) for _ in range(5)]
    assert removed[:3] == [2, 2, 2] and sum(removed) == 7
    assert store.stats()["blobs_kept"] == 1 and store.stats()["blobs_removed"] == 7


def test_names_are_known_again_after_a_restart_so_named_blobs_stay(tmp_path):
    first = ArtifactStore(str(tmp_path / "artifacts"))
    named = put(first, "kept.bin", b"kept")
    old = put(first, "moved.bin", b"before")
    put(first, "moved.bin", b"after")
    reopened = ArtifactStore(str(tmp_path / "artifacts"))
    sweep(reopened, 0.0)
    assert sweep(reopened, GRACE) == 1
    assert reopened.has(named) and not reopened.has(old)
    assert not os.path.exists(tmp_path / "artifacts" / "blobs" / old)
