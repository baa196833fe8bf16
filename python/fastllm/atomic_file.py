"""Writing a file so that readers never see it half-written: the one home for atomic writes.

Everything fastllm saves (tokenizers, checkpoints, ``config.json``, shard metadata) goes
through :func:`atomic_output`: the data goes to a uniquely named temporary file beside the
target, is flushed to disk, then renamed over the target. An interrupted write leaves the old
file intact, and two writers never share a temporary file.
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
