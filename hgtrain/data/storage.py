"""Atomic, settings-checked dataset folders.

A generated set is built in a hidden temporary folder next to its destination, every file is
flushed to disk, a ``manifest.json`` with the generator settings is written last, and only then is
the folder renamed into place (an atomic step). A run killed half-way therefore leaves at most a
hidden ``.NAME.tmp-PID-...`` folder, which is never read and is removed by the next run once its
process is gone; a set is reused only when its manifest's settings equal the requested ones.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "is_prepared", "remove_stale", "write_atomically"]

MANIFEST = "manifest.json"
SYNC_THREADS = 16


def is_prepared(path: Path, settings: dict[str, Any]) -> bool:
    """Whether ``path`` is a complete set generated with exactly ``settings``."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("settings") == _canonical(settings)


def write_atomically(path: Path, settings: dict[str, Any], write: Callable[[Path], None]) -> None:
    """Build a set with ``write(folder)`` in a temporary folder and move it to ``path`` whole.

    An existing folder at ``path`` (a set with other settings, or an incomplete copy) is replaced,
    unless meanwhile another process (another node preparing the same shared folder) put an
    identical set there: then that one is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    temporary = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        write(temporary)
        manifest = {"settings": _canonical(settings)}
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _sync_tree(temporary)
        if is_prepared(path, settings):
            return
        if path.exists():
            retired = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            path.rename(retired)
            temporary.rename(path)
            shutil.rmtree(retired)
        else:
            temporary.rename(path)
        _sync(path.parent)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def remove_stale(folder: Path) -> None:
    """Delete temporary folders in ``folder`` left by processes that no longer run."""
    for candidate in Path(folder).glob(".*.tmp-*"):
        try:
            pid = int(candidate.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except ValueError:
            continue
        if not _alive(pid):
            shutil.rmtree(candidate, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _canonical(settings: dict[str, Any]) -> Any:
    """``settings`` as plain JSON values (tuples become lists), so equality survives a round trip."""
    return json.loads(json.dumps(settings, sort_keys=True))


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder below ``folder`` (so a rename never exposes empty files);
    several at once, since each waits for the disk."""
    paths = []
    for directory, _, files in os.walk(folder):
        paths += [Path(directory, name) for name in files] + [Path(directory)]
    with ThreadPoolExecutor(SYNC_THREADS) as pool:
        list(pool.map(_sync, paths))


def _sync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
