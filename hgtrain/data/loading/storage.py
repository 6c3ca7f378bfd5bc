"""Atomic, self-verifying dataset folders.

What :func:`write_atomically` and :func:`find_problem` guarantee:

- **Whole or absent.** A set is built in a hidden temporary folder next to its destination
  (``.NAME.tmp-HOST-PID-XXXXXXXX``), every file is flushed to disk, ``manifest.json`` is written
  last, and only then is the folder renamed into place (an atomic step). A run killed at any point
  leaves at most such a hidden folder, which is never read and is removed by the next run on the
  same host once process PID is gone (:func:`remove_stale`).
- **Verified before reuse.** The manifest holds the generator settings and the size and SHA-256 of
  every other file in the set. A folder is accepted only if its settings equal the requested ones
  and every recorded file is there with its recorded size and checksum; anything else (a truncated
  or deleted image, a damaged ``annotations.json``, a manifest of an older hgtrain that has no
  checksums) is reported as the first problem found, and the set is written again. Files that the
  manifest does not list are ignored. Checking reads the whole set, in several threads (hashing
  releases the GIL): about 0.05 s for 512 noisy images of 128 px (11 MB) or 256 of 511 px (65 MB)
  on 2 cores.
- **Safe under concurrency.** Several processes (DDP ranks, nodes sharing the folder) may write the
  same set at once: a finished writer keeps an intact identical set that another one has put in
  place meanwhile, and replaces one that is missing, damaged or different. Temporary folders of
  other hosts are left alone (their process IDs mean nothing here).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hgtrain.atomic import process_alive

__all__ = ["MANIFEST", "find_problem", "is_prepared", "remove_stale", "write_atomically"]

MANIFEST = "manifest.json"
# Files hashed or flushed at once: reads and fsyncs wait for the disk, and hashing frees the GIL.
IO_THREADS = 8
CHUNK = 1 << 20
_TEMPORARY = re.compile(r"\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)-[0-9a-f]+$")


def find_problem(path: Path, settings: dict[str, Any]) -> str | None:
    """Why ``path`` is not a complete, intact set generated with ``settings``; ``None`` if it is.

    The answer reads after the folder's name: ``"is damaged (images/000003.png: 1234 bytes, the
    manifest says 35012)"``. Every recorded file is checked (size, then SHA-256).
    """
    path = Path(path)
    if not path.is_dir():
        return "does not exist"
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return f"is incomplete (it has no {MANIFEST})"
    except (OSError, ValueError) as error:
        return f"is damaged ({MANIFEST} is unreadable: {error})"
    if not isinstance(manifest, dict):
        return f"is damaged ({MANIFEST} is not a JSON object)"
    if manifest.get("settings") != _canonical(settings):
        return "holds a set with other settings"
    files = manifest.get("files")
    if not isinstance(files, dict):
        return "has no checksums (it was written by an older hgtrain)"
    with ThreadPoolExecutor(IO_THREADS) as pool:
        for problem in pool.map(_check_file, [path] * len(files), files, files.values()):
            if problem is not None:
                pool.shutdown(wait=False, cancel_futures=True)
                return f"is damaged ({problem})"
    return None


def is_prepared(path: Path, settings: dict[str, Any]) -> bool:
    """Whether ``path`` is a complete, intact set generated with ``settings`` (:func:`find_problem`)."""
    return find_problem(path, settings) is None


def write_atomically(path: Path, settings: dict[str, Any], write: Callable[[Path], None]) -> None:
    """Build a set with ``write(folder)`` in a temporary folder and move it to ``path`` whole.

    The manifest (``settings``, sizes and checksums) is added after ``write``. An existing folder
    at ``path`` (a damaged set, one with other settings, an incomplete copy) is replaced, unless
    meanwhile another process (another node preparing the same shared folder) put an intact
    identical set there: then that one is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    temporary = _hidden(path)
    temporary.mkdir()
    try:
        write(temporary)
        _seal(temporary, settings)
        _install(temporary, path, settings)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def remove_stale(folder: Path) -> None:
    """Delete the temporary folders in ``folder`` of this host's processes that no longer run."""
    host = socket.gethostname()
    for candidate in Path(folder).glob(".*.tmp-*"):
        match = _TEMPORARY.search(candidate.name)
        if match and match["host"] in (None, host) and not process_alive(int(match["pid"])):
            shutil.rmtree(candidate, ignore_errors=True)


def _hidden(path: Path) -> Path:
    """A new hidden sibling of ``path`` that names this host and process (see remove_stale)."""
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return path.parent / f".{path.name}.tmp-{owner}"


def _seal(folder: Path, settings: dict[str, Any]) -> None:
    """Flush every file of ``folder`` to disk, then write and flush the manifest and the folders
    (so that a rename never exposes empty or missing files)."""
    names, directories = [], []
    for directory, _, files in os.walk(folder):
        directories.append(Path(directory))
        names += [Path(directory, name).relative_to(folder).as_posix() for name in files]
    names = sorted(set(names) - {MANIFEST})
    with ThreadPoolExecutor(IO_THREADS) as pool:
        entries = pool.map(_fingerprint, [folder / name for name in names])
        manifest = {
            "settings": _canonical(settings),
            "files": dict(zip(names, entries, strict=True)),
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
        list(pool.map(_sync, [folder / MANIFEST, *directories]))


def _install(temporary: Path, path: Path, settings: dict[str, Any]) -> None:
    """Rename ``temporary`` to ``path`` unless an intact identical set is already there."""
    while find_problem(path, settings) is not None:
        retired = _hidden(path)
        with contextlib.suppress(FileNotFoundError):  # none there, or another process moved it
            path.rename(retired)
        try:
            temporary.rename(path)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            continue  # another process put its set there meanwhile: check that one
        finally:
            shutil.rmtree(retired, ignore_errors=True)
        _sync(path.parent)
        return


def _fingerprint(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, flushed to disk on the way."""
    size, digest = _digest(path, sync=True)
    return {"bytes": size, "sha256": digest}


def _check_file(folder: Path, name: str, entry: Any) -> str | None:
    """The problem of file ``name`` against its manifest ``entry``, or ``None``."""
    if not isinstance(entry, dict) or not {"bytes", "sha256"} <= entry.keys():
        return f"{MANIFEST} has a malformed entry for {name}"
    try:
        size = (folder / name).stat().st_size
        if size != entry["bytes"]:
            return f"{name}: {size} bytes, the manifest says {entry['bytes']}"
        if _digest(folder / name)[1] != entry["sha256"]:
            return f"{name}: its content differs from the manifest's checksum"
    except FileNotFoundError:
        return f"{name} is missing"
    except OSError as error:
        return f"{name}: {error.strerror}"
    return None


def _digest(path: Path, sync: bool = False) -> tuple[int, str]:
    """Size and SHA-256 (hex) of a file; with ``sync``, also flush it to disk."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(file.fileno())
    return size, digest.hexdigest()


def _canonical(settings: dict[str, Any]) -> Any:
    """``settings`` as plain JSON values (tuples become lists), so equality survives a round trip."""
    return json.loads(json.dumps(settings, sort_keys=True))


def _sync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
