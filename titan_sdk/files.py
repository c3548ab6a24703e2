"""TitanClient's file methods: project archives and artifacts, moved in chunks and stored by content hash,
and scripts deployed on the master under their file name.

The master keeps one copy of each content (sha256) and names point at contents. An upload first asks
whether the master already holds the content, so sending the same file or folder again moves no bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from typing import List, Optional, Union

from titan import defaults
from titan.archives import zip_folder


# What deploy_script returns, as the original did.
DEPLOY_SUCCESS = "DEPLOY_SUCCESS"
# Where the original SDK's get_artifact saved a file when given no save_path.
ORIGINAL_ARTIFACT_FOLDER = "/tmp"


class FileTransfers:
    """Mixed into TitanClient; needs its `_ask(op, **fields)`."""

    def upload_project_folder(self, folder_path: str, project_name: Optional[str] = None, *,
                              name: Optional[str] = None) -> str:
        """Zip a project folder (skipping __pycache__, .git, .venv, *.pyc and other caches) and store it on
        the master as `project_name` (the original's argument; `name` is the same) + ".zip" when it does not
        end so already; default: the folder's name. Returns the name, for jobs that run from it:
        TitanJob(id, "<name>/src/step.py", is_archive=True). The same content is sent only once."""
        if project_name is not None and name is not None and project_name != name:
            raise ValueError(f"give the archive's name once: project_name={project_name!r} or name={name!r}")
        return self._upload_project(folder_path, project_name or name)[0]

    def _upload_project(self, path: str, name: Optional[str]) -> tuple:
        name = name or os.path.basename(os.path.abspath(path))
        name = name if name.endswith(".zip") else name + ".zip"
        if "/" in name:
            raise ValueError(f"a project archive name has no '/', got {name!r}")
        data = zip_folder(path)
        entry = self._upload(lambda: io.BytesIO(data), name, "archive")
        return name, entry["sha256"]

    def upload_file(self, path: str, name: Optional[str] = None) -> str:
        """Store a file on the master as an artifact named `name` (default: its base name); returns the name.
        Large files travel in chunks; content the master already holds is not sent again."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"file to upload {path!r} not found")
        name = name or os.path.basename(path)
        self._upload(lambda: open(path, "rb"), name, "file")
        return name

    def publish_artifact(self, key: str, path: str) -> dict:
        """Store a job's output file under `key`, for other jobs or the user (get_artifact). Returns
        {"name", "sha256", "size", "kind"}."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"artifact file {path!r} not found")
        return self._upload(lambda: open(path, "rb"), key, "file")

    def fetch_artifact(self, filename: str, save_path: Optional[str] = None) -> str:
        """Download an artifact (or a project archive's zip) to save_path (a folder: saved in it under the
        artifact's name; default, as in the original: `filename` itself, relative to the current folder);
        byte-identical, written whole or not at all. Returns the path written. UnknownArtifact names the
        artifact if the master has none of that name."""
        name = filename
        save_path = filename if save_path is None else save_path
        entry = self._ask("artifact_info", name=name)
        if os.path.isdir(save_path):
            save_path = os.path.join(save_path, os.path.basename(name) or "artifact")
        folder = os.path.dirname(os.path.abspath(save_path))
        os.makedirs(folder, exist_ok=True)
        partial = f"{save_path}.part-{uuid.uuid4().hex[:8]}"
        try:
            digest = self._download(entry, partial)
            if digest != entry["sha256"]:
                raise IOError(f"artifact {name!r} arrived damaged (sha256 {digest[:16]}... instead of "
                              f"{entry['sha256'][:16]}...); try again")
            os.replace(partial, save_path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return save_path

    def get_artifact(self, key: str, save_path: Optional[str] = None) -> str:
        """What publish_artifact(key, ...) stored, saved to save_path (default, as in the original:
        /tmp/<the key's last part>); see fetch_artifact."""
        if save_path is None:
            save_path = os.path.join(ORIGINAL_ARTIFACT_FOLDER, os.path.basename(key) or "artifact")
        return self.fetch_artifact(key, save_path)

    def deploy_script(self, filepath: str, content: Union[bytes, str, None] = None) -> str:
        """Keep a script on the master under its file name, as the original did: a TitanJob whose script
        is not found where it is built runs the deployed one (a local file of that name wins). `content`
        (bytes or text) is deployed instead of reading `filepath`, which then only names it. Deploying a
        name again replaces the script for jobs submitted afterwards. Returns "DEPLOY_SUCCESS", as the
        original did; `deployed_scripts()` and `titan scripts` list what is deployed."""
        if content is None:
            if not os.path.isfile(filepath):
                raise FileNotFoundError(f"script to deploy {filepath!r} not found")
            with open(filepath, "rb") as handle:
                content = handle.read()
        script = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        self._ask("deploy_script", name=os.path.basename(filepath), script=script)
        return DEPLOY_SUCCESS

    def deployed_scripts(self) -> List[dict]:
        """The scripts deployed on the master, by name: [{"name", "sha256", "size", "deployed_at"}, ...]."""
        return self._ask("deployed_scripts")

    def _upload(self, open_source, name: str, kind: str) -> dict:
        with open_source() as source:
            sha256 = _sha256_of(source)
        upload_id = None
        if not self._ask("has_blob", sha256=sha256):
            upload_id = uuid.uuid4().hex
            offset = 0
            with open_source() as source:
                while True:
                    chunk = source.read(defaults.TRANSFER_CHUNK_BYTES)
                    if not chunk and offset > 0:
                        break
                    offset = self._ask("upload_chunk", upload_id=upload_id, offset=offset, data=chunk)
                    if not chunk:
                        break
        return self._ask("upload_finish", upload_id=upload_id, sha256=sha256, name=name, kind=kind)

    def _download(self, entry: dict, path: str) -> str:
        hasher = hashlib.sha256()
        offset = 0
        with open(path, "wb") as sink:
            while offset < entry["size"]:
                chunk = self._ask("read_blob", sha256=entry["sha256"], offset=offset)["data"]
                if not chunk:
                    raise IOError(f"artifact {entry['name']!r} ended early at byte {offset} of {entry['size']}")
                sink.write(chunk)
                hasher.update(chunk)
                offset += len(chunk)
        return hasher.hexdigest()


def _sha256_of(source) -> str:
    hasher = hashlib.sha256()
    for chunk in iter(lambda: source.read(defaults.TRANSFER_CHUNK_BYTES), b""):
        hasher.update(chunk)
    return hasher.hexdigest()
