"""Fixtures for the Rust tokenizer core: real vocabularies loaded both into
``fastllm._core.CoreBPE`` and into tiktoken (the reference)."""

from __future__ import annotations

import functools
from pathlib import Path
from unittest import mock

import pytest

tiktoken = pytest.importorskip("tiktoken")
import tiktoken.load  # noqa: E402
import tiktoken_ext.openai_public as openai_public  # noqa: E402

from fastllm import _core  # noqa: E402

#: core pattern name -> (vocab file, tiktoken_ext constructor)
ENCODINGS = {
    "gpt2": ("gpt2.tiktoken", openai_public.r50k_base),
    "cl100k": ("cl100k_base.tiktoken", openai_public.cl100k_base),
    "o200k": ("o200k_base.tiktoken", openai_public.o200k_base),
}
CORPORA = ("tinyshakespeare.txt", "multilingual.txt")


class Pair:
    """The same vocabulary as a CoreBPE and as a tiktoken Encoding."""

    def __init__(self, name: str, data: Path) -> None:
        file, constructor = ENCODINGS[name]
        ranks = tiktoken.load.load_tiktoken_bpe(str(data / file))
        # The pattern and specials come from tiktoken's own definition; only the
        # (networked) loader is replaced by the local file.
        with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *a, **k: ranks):
            spec = constructor()
        self.name = name
        self.pat_str: str = spec["pat_str"]
        self.special_tokens: dict[str, int] = spec["special_tokens"]
        self.mergeable = [token for token, _ in sorted(ranks.items(), key=lambda kv: kv[1])]
        self.ref = tiktoken.Encoding(
            f"ref_{name}", pat_str=self.pat_str, mergeable_ranks=ranks, special_tokens=self.special_tokens
        )
        self.core = _core.CoreBPE(self.mergeable, self.special_tokens, name)


@functools.lru_cache(maxsize=None)
def _pair(name: str, data: str) -> Pair:
    return Pair(name, Path(data))


@pytest.fixture(params=list(ENCODINGS), scope="session")
def pair(request, shared_data) -> Pair:
    return _pair(request.param, str(shared_data))


@pytest.fixture(scope="session")
def pairs(shared_data) -> dict[str, Pair]:
    return {name: _pair(name, str(shared_data)) for name in ENCODINGS}


@pytest.fixture(scope="session")
def corpora(shared_data) -> dict[str, str]:
    return {name: (shared_data / name).read_text(encoding="utf-8") for name in CORPORA}


@pytest.fixture(scope="session")
def byte_core():
    """A tiny vocabulary (256 bytes + a few merges) that needs no shared data."""
    tokens = [bytes([b]) for b in range(256)] + [b"he", b"ll", b"hell", b"hello", b" w", b"or", b"ld"]
    return _core.CoreBPE(tokens, {"<|end|>": 300, "<|pad|>": 301}, "gpt2")
