"""Fixtures for the tokenizer tests.

Reference encodings are tiktoken ``Encoding`` objects built from the shared
vocab files, with pat_str and special tokens taken from the installed
``tiktoken_ext.openai_public``. ``fastllm`` encodings come from the same files.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from encoding_table import ENCODINGS


@functools.lru_cache(maxsize=None)
def _reference(name: str, data_dir: str):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext import openai_public

    ctor, file_name, _ = ENCODINGS[name]
    spec = getattr(openai_public, ctor)  # reads its pat_str / specials only
    ranks = load_tiktoken_bpe(str(Path(data_dir, file_name)))
    info = _spec_without_download(spec)
    return tiktoken.Encoding(name, pat_str=info["pat_str"], mergeable_ranks=ranks, special_tokens=info["special_tokens"])


def _spec_without_download(ctor):
    """Calls an openai_public constructor with its vocab loader stubbed out, for pat_str and specials."""
    from tiktoken_ext import openai_public

    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *a, **k: {}
    try:
        return ctor()
    finally:
        openai_public.load_tiktoken_bpe = original


@functools.lru_cache(maxsize=None)
def _fastllm(name: str, data_dir: str):
    from fastllm import Tokenizer

    ref = _reference(name, data_dir)
    _, file_name, pattern = ENCODINGS[name]
    return Tokenizer.from_tiktoken(Path(data_dir, file_name), pattern=pattern, special_tokens=ref._special_tokens, name=name)


@pytest.fixture(scope="session")
def reference_encoding(shared_data):
    """``reference_encoding(name)`` -> tiktoken Encoding built from the shared vocab file."""
    return lambda name: _reference(name, str(shared_data))


@pytest.fixture(scope="session")
def fastllm_encoding(shared_data):
    """``fastllm_encoding(name)`` -> fastllm Tokenizer built from the same shared vocab file."""
    return lambda name: _fastllm(name, str(shared_data))


@pytest.fixture(scope="session")
def openai_spec():
    """``openai_spec(tiktoken_name)`` -> dict with pat_str and special_tokens from tiktoken_ext."""
    from tiktoken_ext import openai_public

    return lambda ctor: _spec_without_download(getattr(openai_public, ctor))


@pytest.fixture(scope="session")
def byte_tokenizer():
    """A tiny tokenizer: the 256 bytes plus a few merges, cl100k pattern, two specials."""
    from fastllm import Tokenizer

    tokens = [bytes([b]) for b in range(256)] + [b"th", b"the", b" t", b" the", b"in", b"ing", b"er"]
    return Tokenizer(tokens, {"<|endoftext|>": 263, "<|pad|>": 264}, "cl100k")
