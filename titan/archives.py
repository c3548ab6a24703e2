"""Project archives: a folder zipped the same way every time, and extracted without leaving its folder.

`zip_folder` makes the same bytes (hence the same sha256) for the same folder content: entries sorted,
timestamps fixed, caches skipped. `safe_extract` refuses an entry with an absolute path, a `..`
component, or a symlink that points outside the destination, naming the entry.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import zipfile
from typing import Iterator, List, Tuple

from titan import defaults

# Folders and files that are caches or tool state, never part of a project's meaning.
SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".mypy_cache", ".pytest_cache",
                          ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints", ".eggs"})
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
SKIPPED_FILES = frozenset({".DS_Store"})
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)   # the earliest a zip can hold: no clock in the hash


class ArchiveError(ValueError):
    """An archive that cannot be extracted safely; the message names the entry."""


def zip_folder(folder: str) -> bytes:
    """The folder's files as a deterministic zip (caches skipped). Symlinks are stored as what they
    point to, so the archive never holds a link."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"project folder {folder!r} not found")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, path in _project_files(folder):
            info = zipfile.ZipInfo(relative, date_time=FIXED_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = os.stat(path).st_mode & stat.S_IXUSR
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            with open(path, "rb") as handle:
                archive.writestr(info, handle.read())
    return buffer.getvalue()


def _project_files(folder: str) -> Iterator[Tuple[str, str]]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(SKIPPED_SUFFIXES))
        for name in sorted(files):
            path = os.path.join(root, name)
            if name in SKIPPED_FILES or name.endswith(SKIPPED_SUFFIXES) or not os.path.isfile(path):
                continue
            yield os.path.relpath(path, folder).replace(os.sep, "/"), path


def safe_extract(zip_path: str, destination: str) -> None:
    """Extract into `destination` (which must not exist yet), all or nothing: it appears only complete."""
    parent = os.path.dirname(os.path.abspath(destination))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".extracting-", dir=parent)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            _extract_checked(archive, staging)
        os.rename(staging, destination)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArchiveError(f"not a valid zip archive: {exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract_checked(archive: zipfile.ZipFile, root: str) -> None:
    entries = archive.infolist()
    total = sum(entry.file_size for entry in entries)
    if total > defaults.MAX_ARCHIVE_EXTRACTED_BYTES:
        raise ArchiveError(f"archive would extract to {total:,} bytes, over the "
                           f"{defaults.MAX_ARCHIVE_EXTRACTED_BYTES:,}-byte limit")
    links: List[Tuple[zipfile.ZipInfo, str]] = []
    for entry in entries:
        target = os.path.join(root, *_checked_parts(entry.filename))
        if _is_symlink(entry):
            links.append((entry, target))
        else:
            _guarded(entry, _write_entry, archive, entry, target)
    # Links last, so no file is ever written through one; each must resolve inside, chains included.
    for entry, target in links:
        _guarded(entry, _write_link, archive, entry, target)
    real_root = os.path.realpath(root)
    for entry, target in links:
        resolved = os.path.realpath(target)
        if resolved != real_root and not resolved.startswith(real_root + os.sep):
            raise ArchiveError(f"archive entry {entry.filename!r} is a symlink that points outside the "
                               f"project folder ({archive.read(entry).decode('utf-8', 'replace')!r}); refused")


def _write_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, target: str) -> None:
    if entry.is_dir():
        os.makedirs(target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with archive.open(entry) as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    os.chmod(target, 0o755 if (entry.external_attr >> 16) & stat.S_IXUSR else 0o644)


def _write_link(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.symlink(archive.read(entry).decode("utf-8", "surrogateescape"), target)


def _guarded(entry: zipfile.ZipInfo, write, *args) -> None:
    try:
        write(*args)
    except OSError as exc:   # e.g. two entries claiming one path as a file and as a folder
        raise ArchiveError(f"archive entry {entry.filename!r} cannot be extracted: {exc.strerror or exc}") from None


def _checked_parts(name: str) -> List[str]:
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise ArchiveError(f"archive entry {name!r} has an absolute path; refused")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"archive entry {name!r} has a '..' component (it would leave the project folder); "
                           "refused")
    if not parts or "\0" in unified:
        raise ArchiveError(f"archive entry {name!r} has no usable path; refused")
    return parts


def _is_symlink(entry: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(entry.external_attr >> 16)
