"""The master's files: artifacts and project archives, stored once by content hash (sha256) and named.

Layout under the root (<data dir>/artifacts, or a temp folder when the master has no data dir):

    blobs/<sha256>          the bytes, written whole (temp file + rename), never changed after
    names/<sha256 of name>  {"name", "sha256", "size", "kind"}: which content a name points at now
    uploads/<upload id>     bytes of an upload still arriving (dropped at start: a client starts again)

A blob that no name points at and no job run the master keeps pins (JobSpec.archive) is garbage once it
has been so for the grace period (--artifact-grace): sweep() looks at a few blobs each time the master
calls it and removes those. The grace counts from when a sweep first saw the blob unreferenced, and
starts again whenever it is written or asked for (has_blob), so a client that was told "held, no need to
upload" can still name it; after a restart every grace starts again (the master errs on keeping).

Everything is a file, so it survives a master restart when the root is in the data dir. With a PostgreSQL
journal the blobs and names live in PostgreSQL instead (postgres_artifacts.py), and only uploads still
arriving are files here, in a temp folder. Uploads arrive in
chunks appended in order; the hash is computed as they arrive, so finishing one costs no re-read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Tuple

from titan import defaults
from titan.core.errors import RequestRejected, UnknownArtifact
from titan.net.jobwire import is_sha256
from titan.net.messages import ARTIFACT_KINDS

# Uploads begun and never finished are forgotten (and their bytes deleted) past this many.
MAX_OPEN_UPLOADS = 256
UPLOAD_ID_CHARS = frozenset("0123456789abcdef-")
# What clients upload is theirs: readable by the master's user alone.
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


@dataclass
class _Upload:
    path: str
    size: int = 0
    last_chunk: bytes = b""
    hasher: "hashlib._Hash" = field(default_factory=hashlib.sha256)


class ArtifactStore:
    def __init__(self, root: Optional[str]):
        self.owns_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="titan-artifacts-")
        shutil.rmtree(os.path.join(self.root, "uploads"), ignore_errors=True)   # unfinished before a restart
        for folder in ("", "blobs", "names", "uploads"):   # Titan's own folders: private, new or old
            os.makedirs(os.path.join(self.root, folder), mode=PRIVATE_DIR, exist_ok=True)
            os.chmod(os.path.join(self.root, folder), PRIVATE_DIR)
        self._uploads: "OrderedDict[str, _Upload]" = OrderedDict()
        self.bytes_received = 0          # upload bytes taken in, for stats (a repeat upload adds none)
        self.bytes_sent_to_workers = 0
        self.archive_fetches = 0         # archive transfers to workers begun (first chunks sent)
        self._held = set(self._stored_blobs())       # the sha256 of every blob stored
        self._named = Counter(json.loads(entry)["sha256"] for entry in self._stored_entries())
        self._unreferenced_since: dict = {}   # sha256 -> when a sweep first saw it unreferenced (monotonic)
        self._to_sweep: deque = deque()       # what the sweep looks at next; refilled from _held when empty
        self.blobs_removed = 0

    # ----------------------------------------------------------------- receiving

    def has(self, sha256: str) -> bool:
        """Held, and then kept a grace period more: whoever asks may be about to name it."""
        if not (is_sha256(sha256) and sha256 in self._held):
            return False
        self._unreferenced_since.pop(sha256, None)
        return True

    def receive_chunk(self, upload_id: str, offset: int, data: bytes) -> int:
        """Append one chunk; a repeat of the last chunk (a client retry) is accepted and ignored."""
        upload = self._upload(upload_id, create=offset == 0)
        if offset + len(data) == upload.size and data == upload.last_chunk:
            return upload.size
        if offset != upload.size:
            raise RequestRejected(f"upload {upload_id!r} expected the chunk at offset {upload.size}, got {offset}",
                                  expected=upload.size)
        with open(upload.path, "ab", opener=_private) as handle:
            handle.write(data)
        upload.hasher.update(data)
        upload.size += len(data)
        upload.last_chunk = data
        self.bytes_received += len(data)
        return upload.size

    def finish(self, upload_id: Optional[str], sha256: str, name: str, kind: str) -> dict:
        """Name the content `sha256`: from the upload just completed, or already held (upload_id None)."""
        check_name(name)
        if kind not in ARTIFACT_KINDS:
            raise RequestRejected(f"artifact kind must be one of {', '.join(ARTIFACT_KINDS)}, got {kind!r}")
        if upload_id is not None and not self.has(sha256):
            self._keep_upload(upload_id, sha256)
        if not self.has(sha256):
            raise UnknownArtifact(f"the master holds no content with sha256 {sha256[:16]}...; upload it first",
                                  sha256=sha256)
        entry = {"name": name, "sha256": sha256, "size": self._blob_size(sha256), "kind": kind}
        before = self._read_entry(name)
        self._write_entry(name, json.dumps(entry).encode())
        self._named[sha256] += 1
        if before is not None:   # re-pointed: what it named before may now be unreferenced, and age out
            self._unname(json.loads(before)["sha256"])
        return entry

    def _unname(self, sha256: str) -> None:
        self._named[sha256] -= 1
        if self._named[sha256] <= 0:
            del self._named[sha256]

    def _keep_upload(self, upload_id: str, sha256: str) -> None:
        upload = self._upload(upload_id, create=False)
        actual = upload.hasher.hexdigest()
        if actual != sha256:
            self._drop_upload(upload_id)
            raise RequestRejected(f"upload {upload_id!r} has sha256 {actual[:16]}..., not the announced "
                                  f"{sha256[:16]}...; the bytes were damaged, upload again")
        self._store_blob(upload.path, sha256)
        self._held.add(sha256)
        self._unreferenced_since.pop(sha256, None)
        del self._uploads[upload_id]

    def _upload(self, upload_id: str, create: bool) -> _Upload:
        if not upload_id or len(upload_id) > 64 or not set(upload_id) <= UPLOAD_ID_CHARS:
            raise RequestRejected(f"upload id must be up to 64 lowercase hex digits or '-', got {upload_id[:80]!r}")
        upload = self._uploads.get(upload_id)
        if upload is None:
            if not create:
                raise RequestRejected(f"no upload {upload_id!r} in progress (the master may have restarted); "
                                      "upload the file again")
            upload = self._uploads[upload_id] = _Upload(os.path.join(self.root, "uploads", upload_id))
            open(upload.path, "wb", opener=_private).close()
            while len(self._uploads) > MAX_OPEN_UPLOADS:
                self._drop_upload(next(iter(self._uploads)))
        return upload

    def _drop_upload(self, upload_id: str) -> None:
        upload = self._uploads.pop(upload_id)
        try:
            os.unlink(upload.path)
        except FileNotFoundError:
            pass

    # ----------------------------------------------------------------- serving

    def info(self, name: str) -> dict:
        check_name(name)
        entry = self._read_entry(name)
        if entry is None:
            raise UnknownArtifact(f"no artifact named {name!r} on the master", name=name)
        return json.loads(entry)

    def read(self, sha256: str, offset: int, limit: int = defaults.TRANSFER_CHUNK_BYTES) -> Tuple[bytes, int]:
        """Up to `limit` bytes from `offset`, and the blob's whole size."""
        if not self.has(sha256):
            raise UnknownArtifact(f"the master holds no content with sha256 {sha256[:16]}...", sha256=sha256)
        return self._read_blob(sha256, max(0, offset), limit)

    def stats(self) -> dict:
        return {"bytes_received": self.bytes_received, "bytes_sent_to_workers": self.bytes_sent_to_workers,
                "archive_fetches": self.archive_fetches, "root": self.root,
                "blobs_kept": len(self._held), "blobs_removed": self.blobs_removed}

    # ----------------------------------------------------------------- letting go

    def sweep(self, now: float, grace: float, pinned: Callable[[str], bool], look: int, remove: int) -> int:
        """Look at up to `look` blobs; remove (up to `remove` of) those unreferenced (no name, not `pinned`)
        for `grace` seconds by `now` (monotonic). Returns how many were removed."""
        if not self._to_sweep:
            self._to_sweep.extend(self._held)
        garbage: list = []
        for _ in range(min(look, len(self._to_sweep))):
            if len(garbage) >= remove:
                break
            sha256 = self._to_sweep.popleft()
            if sha256 not in self._held:
                continue
            if self._named.get(sha256) or pinned(sha256):
                self._unreferenced_since.pop(sha256, None)
            elif now - self._unreferenced_since.setdefault(sha256, now) >= grace:
                garbage.append(sha256)
        if garbage:
            self._remove_blobs(garbage)
            self._held.difference_update(garbage)
            for sha256 in garbage:
                self._unreferenced_since.pop(sha256, None)
            self.blobs_removed += len(garbage)
        return len(garbage)

    def close(self) -> None:
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # ----------------------------------------------------------------- where the bytes are kept (files here;
    # postgres_artifacts.py keeps them in the PostgreSQL journal)

    def _store_blob(self, upload_path: str, sha256: str) -> None:
        _fsync_file(upload_path)
        os.replace(upload_path, self._blob(sha256))

    def _blob_size(self, sha256: str) -> int:
        return os.path.getsize(self._blob(sha256))

    def _stored_blobs(self) -> Iterable[str]:
        return [name for name in os.listdir(os.path.join(self.root, "blobs")) if is_sha256(name)]

    def _stored_entries(self) -> Iterable[bytes]:
        folder = os.path.join(self.root, "names")
        for name in os.listdir(folder):
            if not name.endswith(".tmp"):
                with open(os.path.join(folder, name), "rb") as handle:
                    yield handle.read()

    def _remove_blobs(self, sha256s: list) -> None:
        for sha256 in sha256s:
            try:
                os.unlink(self._blob(sha256))
            except OSError:   # gone already, or left over: the listing at the next start finds it again
                pass

    def _read_blob(self, sha256: str, offset: int, limit: int) -> Tuple[bytes, int]:
        with open(self._blob(sha256), "rb") as handle:
            handle.seek(offset)
            return handle.read(limit), os.fstat(handle.fileno()).st_size

    def _write_entry(self, name: str, entry: bytes) -> None:
        _write_atomically(self._name_file(name), entry)

    def _read_entry(self, name: str) -> Optional[bytes]:
        try:
            with open(self._name_file(name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def _blob(self, sha256: str) -> str:
        return os.path.join(self.root, "blobs", sha256)

    def _name_file(self, name: str) -> str:
        return os.path.join(self.root, "names", hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest())


def open_artifacts(data_dir: Optional[str], journal) -> ArtifactStore:
    """In the PostgreSQL journal when the master has one (a standby needs them too), else files in the
    data dir, else a temp folder."""
    if journal is not None and journal.shared:
        from titan.master.postgres_artifacts import PostgresArtifactStore
        return PostgresArtifactStore(journal)
    return ArtifactStore(os.path.join(data_dir, "artifacts") if data_dir else None)


def check_name(name: str) -> None:
    if not name or len(name) > defaults.MAX_ARTIFACT_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise RequestRejected(f"artifact name must be 1 to {defaults.MAX_ARTIFACT_NAME_CHARS} printable "
                              f"characters, got {name[:80]!r}")


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, PRIVATE_FILE)


def _write_atomically(path: str, data: bytes) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "wb", opener=_private) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fsync_file(path: str) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
