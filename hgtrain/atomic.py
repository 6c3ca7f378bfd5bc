"""Files that are either whole or absent: write beside the target, flush to disk, rename over it.

A reader never sees half a file, and a write that is killed (or fails) leaves the previous file as
it was: the new content goes to a hidden temporary file in the target's own folder (a rename
across file systems would be a copy), is ``fsync``'d, and replaces the target in one ``os.replace``;
the folder is synced too, so that the rename survives a crash.

A write that is killed (SIGKILL, a power cut) leaves its temporary file behind, named
``.TARGET.HOST-PIDNS-PID-XXXXXXXX.tmp`` after the process that wrote it;
:func:`remove_stale_temporaries` deletes such leftovers once their writer is gone (or they are a
day old).
"""

from __future__ import annotations

import os
import re
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "STALE_AFTER_S",
    "atomic_path",
    "process_alive",
    "remove_stale_temporaries",
    "write_file_atomically",
]

STALE_AFTER_S = 24 * 3600
"""A temporary file unmodified for this long is no write in progress, whoever wrote it."""
_TEMPORARY = re.compile(r"\..+\.(?:[0-9a-f]{32}|.+-\d+-\d+-[0-9a-f]{8})\.tmp")
"""The names :func:`atomic_path` gives temporary files (``[0-9a-f]{32}``: earlier hgtrain versions)."""


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` for the body to write; renamed over ``path`` when the
    body succeeds, removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{_writer()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield temporary
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_file_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Create or replace ``path`` with what ``write(file)`` writes, atomically."""
    with atomic_path(path) as temporary, open(temporary, "xb") as file:
        write(file)


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files in ``folder`` that killed :func:`atomic_path` writes left; the
    paths of those deleted.

    Only regular files named exactly as :func:`atomic_path` names them are candidates, and of
    those only files that no write still uses: their writer ran on this host, in this PID
    namespace, and its process is gone (so a leftover goes at the first start after the kill,
    while the file of a run writing into the same folder right now is kept: its process is
    alive), or they have not been modified for :data:`STALE_AFTER_S` (a write in progress keeps
    writing; this also covers leftovers of other hosts and containers, whose process IDs mean
    nothing here, and of earlier hgtrain versions, whose names do not say who wrote them). A live
    writer is never taken for a dead one; a reused PID only keeps a leftover until it is a day old.
    """
    host_and_namespace = _writer().rsplit("-", 1)[0]
    mine = re.compile(rf"\..+\.{re.escape(host_and_namespace)}-(\d+)-[0-9a-f]{{8}}\.tmp")
    now, removed = time.time(), []
    for candidate in sorted(Path(folder).glob(".*.tmp")):
        if not _TEMPORARY.fullmatch(candidate.name):
            continue
        own = mine.fullmatch(candidate.name)
        writer_gone = own is not None and not process_alive(int(own[1]))
        try:
            status = candidate.lstat()
            if stat.S_ISREG(status.st_mode) and (
                writer_gone or now - status.st_mtime >= STALE_AFTER_S
            ):
                candidate.unlink()
                removed.append(candidate)
        except FileNotFoundError:  # another process removed it first
            continue
    return removed


def _writer() -> str:
    """This process as the writer of a temporary file: ``HOST-PIDNS-PID``.

    The PID namespace (0 where the system has none) tells apart containers that share a host
    name, in which the same PID is another process.
    """
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}-{namespace}-{os.getpid()}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
