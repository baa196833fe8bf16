"""Fixtures for the tokenizer tests.

Reference encodings are tiktoken ``Encoding`` objects built from the shared
vocab files, with pat_str and special tokens taken from the installed
``tiktoken_ext.openai_public``. ``fastllm`` encodings come from the same files:
as ``Tokenizer`` objects keyed by encoding name (``fastllm_encoding``), and as
raw ``fastllm._core.CoreBPE`` objects keyed by pattern name (``pair``, ``pairs``).
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

from fastllm import _core

from tests.support.encodings import CORPORA, ENCODINGS, PATTERNS, by_pattern


@functools.lru_cache(maxsize=None)
def _reference(name: str, data_dir: str):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext import openai_public

    enc = ENCODINGS[name]
    spec = getattr(openai_public, enc.tiktoken_ctor)  # reads its pat_str / specials only
    ranks = load_tiktoken_bpe(str(Path(data_dir, enc.vocab_file)))
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
    enc = ENCODINGS[name]
    return Tokenizer.from_tiktoken(Path(data_dir, enc.vocab_file), pattern=enc.pattern, special_tokens=ref._special_tokens, name=name)


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


class Pair:
    """The same vocabulary as a CoreBPE and as a tiktoken Encoding, keyed by pattern name."""

    def __init__(self, name: str, data: Path) -> None:
        tiktoken = pytest.importorskip("tiktoken")
        import tiktoken.load
        from tiktoken_ext import openai_public

        enc = by_pattern(name)
        ranks = tiktoken.load.load_tiktoken_bpe(str(data / enc.vocab_file))
        # The pattern and specials come from tiktoken's own definition, without its (networked) loader.
        spec = _spec_without_download(getattr(openai_public, enc.tiktoken_ctor))
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


@pytest.fixture(params=list(PATTERNS), scope="session")
def pair(request, shared_data) -> Pair:
    """One real vocabulary per pattern name (parametrized) as CoreBPE + tiktoken."""
    return _pair(request.param, str(shared_data))


@pytest.fixture(scope="session")
def pairs(shared_data) -> dict[str, Pair]:
    """pattern name -> Pair, for all real vocabularies."""
    return {name: _pair(name, str(shared_data)) for name in PATTERNS}


@pytest.fixture(scope="session")
def corpora(shared_data) -> dict[str, str]:
    return {name: (shared_data / name).read_text(encoding="utf-8") for name in CORPORA}


@pytest.fixture(scope="session")
def byte_core():
    """A tiny vocabulary (256 bytes + a few merges) that needs no shared data."""
    tokens = [bytes([b]) for b in range(256)] + [b"he", b"ll", b"hell", b"hello", b" w", b"or", b"ld"]
    return _core.CoreBPE(tokens, {"<|end|>": 300, "<|pad|>": 301}, "gpt2")


@pytest.fixture
def gpt2_cached(tmp_path, monkeypatch, shared_data):
    """The gpt2 encoding available offline from a temporary cache."""
    folder = tmp_path / "cache" / "encodings"
    folder.mkdir(parents=True)
    shutil.copy(shared_data / "gpt2.tiktoken", folder / "r50k_base.tiktoken")
    monkeypatch.setenv("FASTLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FASTLLM_OFFLINE", "1")
