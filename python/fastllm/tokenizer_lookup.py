"""Opening a tokenizer from one string, as command lines name them."""

from __future__ import annotations

import os
from pathlib import Path

from fastllm.tokenizer import Tokenizer

_FASTLLM_MARK = b'"format": "fastllm-tokenizer"'


def open_tokenizer(spec: str | os.PathLike, pattern: str | None = None) -> Tokenizer:
    """A tokenizer from ``spec``:

    * a named encoding (``gpt2``, ``cl100k_base``, ``o200k_base``),
    * a fastllm tokenizer file (:meth:`Tokenizer.save`) or a HF ``tokenizer.json``,
    * a HF checkpoint directory (:meth:`Tokenizer.from_pretrained`),
    * a ``.tiktoken`` file, which needs ``pattern``.
    """
    from fastllm.encodings import ALIASES, ENCODINGS, get_encoding

    text = os.fspath(spec)
    if text in ENCODINGS or text in ALIASES:
        return get_encoding(text)
    path = Path(text)
    if path.is_dir():
        return Tokenizer.from_pretrained(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{text}: not a named encoding ({', '.join(ENCODINGS)}), a tokenizer file or a checkpoint directory"
        )
    if path.suffix == ".tiktoken":
        if pattern is None:
            raise ValueError(f"{text}: a .tiktoken file holds no split pattern; give one (gpt2, cl100k, o200k or a regex)")
        return Tokenizer.from_tiktoken(path, pattern=pattern)
    with open(path, "rb") as handle:
        head = handle.read(256)
    if _FASTLLM_MARK in head:
        return Tokenizer.load(path)
    return Tokenizer.from_hf_json(path)
