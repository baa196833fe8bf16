"""Writing outputs safely: atomic file replacement and exclusive output directories.

Everything fastllm saves (tokenizers, checkpoints, ``config.json``, shard metadata) goes
through :func:`atomic_output`: the data goes to a uniquely named temporary file beside the
target, is flushed to disk, then renamed over the target. An interrupted write leaves the old
file intact, and two writers never share a temporary file.

A run that writes into a directory (``train``, ``sft``, ``dpo``, ``prepare``) holds it with
:func:`hold_directory`, an OS file lock that the system releases when the process ends, crash
or kill included; a second run there is refused at once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` when the block ends without an error.

    Parent directories are created. On an error the temporary file is removed and ``path``
    is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp_name, _file_mode())  # mkstemp makes 0600; a saved file gets the usual mode
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


LOCK_FILE = ".fastllm.lock"


class DirectoryInUseError(OSError):
    """Another process holds the output directory."""


@contextlib.contextmanager
def hold_directory(directory: str | os.PathLike) -> Iterator[Path]:
    """Holds ``directory`` (created if missing) for this process until the block ends.

    Raises :class:`DirectoryInUseError` at once when another process holds it.
    """
    from filelock import FileLock, Timeout  # a dependency of torch; only runs that write use it

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path / LOCK_FILE), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise DirectoryInUseError(
            f"{path} is in use by another fastllm run (it holds {path / LOCK_FILE}); wait for it to "
            "finish or choose another output directory"
        ) from None
    try:
        yield path
    finally:
        lock.release()


def _file_mode() -> int:
    """The mode ``open()`` would give a new file: 0666 less the process umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_output`); returns the path."""
    with atomic_output(path) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` as UTF-8 to ``path`` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))
