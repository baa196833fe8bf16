"""Opening a tokenizer from one argument: an encoding name, a file or a directory.

The one set of rules behind the CLI's ``--tokenizer`` and training's tokenizer argument.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastllm.tokenizer.bpe_tokenizer import Tokenizer
from fastllm.tokenizer.encodings import ALIASES, ENCODINGS, get_encoding, is_encoding_name
from fastllm.tokenizer.formats.fastllm_json import TOKENIZER_FILE, is_tokenizer_file
from fastllm.tokenizer.formats.hf_checkpoint import HF_TOKENIZER_FILE


def open_tokenizer(spec: str | os.PathLike, *, pattern: str | None = None) -> Tokenizer:
    """The tokenizer ``spec`` stands for, by the first rule that applies:

    1. a ``str`` that is an encoding name or alias (``gpt2``, ``cl100k_base``,
       ``o200k_base``, ``r50k_base``, ...): :func:`get_encoding`. A path of the same
       spelling needs a directory part (``./gpt2``) or a ``Path``.
    2. a directory: the file ``tokenizer.fastllm.json`` in it (what ``fastllm prepare``
       writes into a data directory), else ``tokenizer.json`` (a HF checkpoint's), each
       read as in 4; else GPT-2's ``vocab.json`` + ``merges.txt`` (as
       :meth:`Tokenizer.from_pretrained` reads them).
    3. a ``.tiktoken`` file, which holds only the ranks: ``pattern`` gives its split
       pattern; it has no special tokens (add them with :meth:`Tokenizer.with_special_tokens`).
    4. any other file: a fastllm tokenizer file (:meth:`Tokenizer.save`), known by
       its leading ``"format"`` field, else a HF ``tokenizer.json``.

    ``pattern`` (a built-in pattern name or a regex) is for ``.tiktoken`` files only.
    Raises FileNotFoundError when ``spec`` is neither a name nor an existing file or
    a directory with a tokenizer, ValueError for a missing or misplaced ``pattern`` or
    a malformed file, TypeError for a ``spec`` of another type; messages name ``spec``.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"a tokenizer is named by a string or a path, not {type(spec).__name__}")
    text = os.fspath(spec)
    if not text:
        raise ValueError("the tokenizer argument is empty; give an encoding name, a file or a directory")
    if isinstance(spec, str) and is_encoding_name(spec):
        _check_no_pattern(spec, pattern)
        return get_encoding(spec)
    path = Path(text)
    if path.is_dir():
        _check_no_pattern(text, pattern)
        return _open_directory(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"tokenizer {text!r}: not a named encoding ({', '.join(ENCODINGS)}; aliases {', '.join(ALIASES)}) "
            "nor an existing file or directory"
        )
    if path.suffix == ".tiktoken":
        if pattern is None:
            raise ValueError(
                f"tokenizer {text!r}: a .tiktoken file holds no split pattern; give one (gpt2, cl100k, o200k or a regex)"
            )
        return Tokenizer.from_tiktoken(path, pattern=pattern)
    _check_no_pattern(text, pattern)
    return _open_json_file(path)


def _open_json_file(path: Path) -> Tokenizer:
    return Tokenizer.load(path) if is_tokenizer_file(path) else Tokenizer.from_hf_json(path)


def _open_directory(path: Path) -> Tokenizer:
    for name in (TOKENIZER_FILE, HF_TOKENIZER_FILE):
        if (path / name).is_file():
            return _open_json_file(path / name)
    try:
        return Tokenizer.from_pretrained(path)  # vocab.json + merges.txt
    except FileNotFoundError:
        raise FileNotFoundError(
            f"tokenizer {str(path)!r}: the directory holds no tokenizer "
            f"(expected {TOKENIZER_FILE}, {HF_TOKENIZER_FILE}, or vocab.json and merges.txt)"
        ) from None


def _check_no_pattern(spec: str, pattern: str | None) -> None:
    if pattern is not None:
        raise ValueError(f"tokenizer {spec!r}: a split pattern is only given for a .tiktoken file")
