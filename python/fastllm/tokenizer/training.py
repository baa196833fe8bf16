"""Byte-level BPE training (the work is done in Rust: ``fastllm._core.BpeTrainer``)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Union

from fastllm import _core

PathLike = Union[str, "os.PathLike[str]"]
Source = Union[PathLike, Sequence[PathLike], Iterable[str]]

#: Strings pulled from an iterator (with the GIL held) before they are counted
#: together (in parallel, with the GIL released).
BATCH_TEXTS = 8192
#: ... or fewer, once they add up to this many characters.
BATCH_CHARS = 1 << 23
_MAX_U63 = (1 << 63) - 1


def train_ranks(
    source: Source,
    vocab_size: int,
    pattern: str = "cl100k",
    special_tokens: Sequence[str] = (),
    min_frequency: int = 2,
    show_progress: bool | None = None,
    *,
    num_threads: int | None = None,
) -> list[bytes]:
    """Learns a byte-level BPE vocabulary; returns the mergeable tokens in rank order.

    Ranks 0..255 are the single bytes 0..255; rank 256 + k is the token made by the
    k-th merge (the bytes of its left and right tokens joined). At most
    ``vocab_size - len(special_tokens)`` tokens are returned, fewer if no pair of
    tokens occurs ``min_frequency`` times any more (pairs that never occur are never
    merged, so ``min_frequency`` 0 and 1 mean the same).

    ``source``:
      * a path (``str`` or ``os.PathLike``), or a ``list``/``tuple`` of paths: UTF-8
        text files, read streamed in chunks and counted in parallel, so no file has to
        fit in memory at once. Chunks end just before a newline that follows a letter
        (rarely elsewhere at a piece boundary), which for the built-in patterns gives
        exactly the pieces of the whole file; a custom pattern whose matches run
        across such a point sees the file cut there.
      * any other iterable of ``str`` (an iterator, a generator, ``iter(list_of_texts)``,
        a dataset column...): each string is a document of its own; strings are pulled
        in batches and each batch is counted in parallel with the GIL released.

    ``pattern``: ``"gpt2"``, ``"cl100k"``, ``"o200k"`` or a custom regex that splits
    text into the pieces merges stay within. ``special_tokens``: strings cut out of the
    training text (the text is split at them; they are not counted); they are not in
    the result but ``vocab_size`` counts them. ``show_progress``: progress bars on
    stderr; ``None`` shows them only when stderr is a terminal. ``num_threads``: size
    of the thread pool (``None``: all cores); it never changes the result.

    Tie-break (deterministic): each merge takes the adjacent pair with the highest
    count (occurrences within pieces, weighted by how often each piece occurs); among
    equal counts, the pair with the smallest left rank, then the smallest right rank.

    Raises ``ValueError`` for ``vocab_size < 256 + len(special_tokens)``, an invalid
    pattern, empty or duplicate special tokens, an empty corpus (no pieces), a file
    that is not UTF-8 (naming the file and byte offset), a custom pattern the regex
    engine gives up on (it backtracks too much; naming the pattern, and the text's
    index and character offset or the file and byte offset); ``FileNotFoundError``
    for a missing file; ``TypeError`` for arguments of the wrong type.
    """
    _check_int("vocab_size", vocab_size)
    _check_int("min_frequency", min_frequency)
    if min_frequency < 0:
        raise ValueError(f"min_frequency must be >= 0, got {min_frequency}")
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
    specials = _special_list(special_tokens)
    if num_threads is not None:
        _check_int("num_threads", num_threads)
        if num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {num_threads}")
    if show_progress is None:
        show_progress = _stderr_is_tty()

    trainer = _core.BpeTrainer(pattern, specials, num_threads)
    minimum = 256 + len(specials)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size {vocab_size} is too small: it must be at least {minimum} "
            "(256 byte tokens plus the special tokens)"
        )
    paths = _paths_of(source)
    if paths is not None:
        trainer.add_files(paths, show_progress)
    else:
        _add_iterable(trainer, source, show_progress)
    # Training stops when no pair is left long before these limits matter.
    return trainer.train(min(vocab_size, _MAX_U63), min(min_frequency, _MAX_U63), show_progress)


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def _special_list(special_tokens: object) -> list[str]:
    if isinstance(special_tokens, (str, bytes)):
        raise TypeError("special_tokens must be a sequence of str, not a single string")
    try:
        specials = list(special_tokens)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"special_tokens must be a sequence of str, not {type(special_tokens).__name__}") from None
    for s in specials:
        if not isinstance(s, str):
            raise TypeError(f"special tokens must be str, not {type(s).__name__}")
    return specials


def _paths_of(source: object) -> list[str] | None:
    """The file paths `source` names, or None when it is an iterable of texts."""
    if isinstance(source, (str, os.PathLike)):
        return [os.fspath(source)]
    if isinstance(source, (list, tuple)):
        paths = []
        for item in source:
            if not isinstance(item, (str, os.PathLike)):
                raise TypeError(
                    "a list/tuple source must hold file paths (str or os.PathLike), found "
                    f"{type(item).__name__}; to train on in-memory strings pass an iterator, "
                    "e.g. iter(texts)"
                )
            path = os.fspath(item)
            if not isinstance(path, str):
                raise TypeError(f"file paths must be str, not {type(path).__name__}")
            paths.append(path)
        return paths
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError("source must be a path, a list of paths or an iterable of str, not bytes")
    if not isinstance(source, Iterable):
        raise TypeError(
            f"source must be a path, a list of paths or an iterable of str, not {type(source).__name__}"
        )
    return None


def _add_iterable(trainer: _core.BpeTrainer, texts: Iterable[str], show_progress: bool) -> None:
    it = iter(texts)
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(desc="counting", unit=" texts", file=sys.stderr)
    try:
        index = 0
        while True:
            batch, chars = [], 0
            for text in itertools.islice(it, BATCH_TEXTS):
                if not isinstance(text, str):
                    raise TypeError(f"training texts must be str, item {index} is {type(text).__name__}")
                batch.append(text)
                index += 1
                chars += len(text)
                if chars >= BATCH_CHARS:
                    break
            if not batch:
                break
            trainer.add_texts(batch, index - len(batch))
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
