"""Writing files so that nothing is ever half-written: every file intermodal writes goes
to a temporary name beside its destination, is flushed to disk, and is renamed into place;
the folder is then flushed too, so that the rename itself survives a power cut."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_json", "fsync_folder", "fsync_file", "sha256"]


def fsync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where the platform
    cannot open folders (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush one file's contents to disk."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in blocks of 1 MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)``, flush the file to disk, rename it onto ``path`` and flush
    the folder. Readers see the old file or the new one, never part of one; on an error
    the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_folder(path.parent)
    return path


def write_json(path: str | os.PathLike, value) -> Path:
    """Write ``value`` as indented JSON (with a final newline), atomically."""
    text = json.dumps(value, indent=2) + "\n"
    return atomic_write(path, lambda p: Path(p).write_text(text))
