"""Atomic file writing: the one mechanism behind every file gns writes.

A file is written under a fresh temporary name in its own directory and renamed over the
destination with :func:`os.replace` only once it is complete, so a reader (or a run resumed
after a crash) sees either the old file or the whole new one, never half of it. On any
exception the temporary file is deleted.

Example:
    >>> with atomic_path("runs/a/rollouts.h5") as tmp:
    ...     with h5py.File(tmp, "w") as f:
    ...         f["x"] = values
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "temporary_sibling", "write_bytes_atomic", "write_text_atomic", "write_json_atomic"]


def temporary_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh hidden file name beside ``path``, for write-then-``os.replace``.

    Args:
        path: the destination.
        suffix: appended last (writers that pick their encoder from the suffix, e.g. ``.gif``).

    The writer creates the file itself, so the usual umask permissions apply (unlike
    ``tempfile.mkstemp``, whose 0600 files would survive the rename).
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "", fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it over ``path`` when the block succeeds.

    Args:
        path: the destination (its parent directories are created).
        suffix: see :func:`temporary_sibling`.
        fsync: flush the file to disk before the rename (checkpoints: survive a power cut too).

    Raises:
        whatever the block raises; the temporary file is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path, suffix)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a Path."""
    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, "xb") as f:
            f.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (and a final newline) to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")
