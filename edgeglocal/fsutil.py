"""File-system helpers shared by every writer: nothing half-written is ever left under a final name."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from edgeglocal.errors import SinkError

#: The process umask, read once (os.umask can only be read by setting it): mkstemp creates files
#: 0600, and outputs should get the same permissions as any other file the user writes.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps ``path``'s suffix (or ``suffix``) so that writers which pick a
    format from the extension (OpenCV, onnx) still work.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=suffix or final.suffix, dir=final.parent
    )
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_UMASK)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise SinkError(f"Cannot write {final}: the disk is full.") from exc
        raise SinkError(f"Cannot write {final}: {exc.strerror or exc}.") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the final path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def next_run_dir(root: str | os.PathLike, name: str, exist_ok: bool = False) -> Path:
    """Ultralytics-style predictable output folder: ``root/name``, then ``name2``, ``name3``..."""
    root = Path(root)
    candidate = root / name
    if exist_ok or not candidate.exists():
        candidate.mkdir(parents=True, exist_ok=True)
        return candidate
    n = 2
    while (root / f"{name}{n}").exists():
        n += 1
    candidate = root / f"{name}{n}"
    candidate.mkdir(parents=True)
    return candidate
