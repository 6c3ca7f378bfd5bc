"""Files that are either whole or absent: write beside the target, flush to disk, rename over it.

A reader never sees half a file, and a write that is killed (or fails) leaves the previous file as
it was: the new content goes to a hidden temporary file in the target's own folder (a rename
across file systems would be a copy), is ``fsync``'d, and replaces the target in one ``os.replace``;
the folder is synced too, so that the rename survives a crash.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_path", "write_file_atomically"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` for the body to write; renamed over ``path`` when the
    body succeeds, removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
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
