"""A vocabulary trained by fastllm, saved as .tiktoken and loaded into tiktoken,
encodes like fastllm's own tokenizer."""

from __future__ import annotations

import pytest

from tests.support import reference_bpe_trainer as reference

tiktoken = pytest.importorskip("tiktoken")
from tiktoken.load import load_tiktoken_bpe  # noqa: E402

from fastllm import Tokenizer  # noqa: E402
from fastllm.tokenizer import ENDOFTEXT  # noqa: E402
from fastllm.tokenizer.training import train_ranks  # noqa: E402

SPECIALS = [ENDOFTEXT, "<|pad|>"]


@pytest.fixture(scope="module")
def corpus(shared_data):
    shakespeare = (shared_data / "tinyshakespeare.txt").read_text("utf-8")
    multilingual = (shared_data / "multilingual.txt").read_text("utf-8")
    return shakespeare[:300_000], multilingual[:300_000]


@pytest.mark.parametrize("pattern", ["cl100k", "o200k"])
def test_trained_vocab_encodes_identically_in_tiktoken(corpus, tmp_path, pattern):
    shakespeare, multilingual = corpus
    train_path = tmp_path / "train.txt"
    train_path.write_text(shakespeare + ENDOFTEXT + multilingual, "utf-8")
    tok = Tokenizer.train([train_path], 1500, pattern=pattern, special_tokens=SPECIALS)
    assert tok.n_vocab == 1500
    assert tok.special_tokens == {"<|endoftext|>": 1498, "<|pad|>": 1499}

    vocab_file = tmp_path / "trained.tiktoken"
    tok.save_tiktoken(vocab_file)
    ranks = load_tiktoken_bpe(str(vocab_file))
    expected = train_ranks([train_path], 1500, pattern, SPECIALS)
    assert ranks == {t: i for i, t in enumerate(expected)}
    enc = tiktoken.Encoding(
        name="trained",
        pat_str=reference.PATTERNS[pattern],
        mergeable_ranks=ranks,
        special_tokens=tok.special_tokens,
    )
    for text in (shakespeare[-20_000:], multilingual[-20_000:], "<|pad|> x <|endoftext|>"):
        assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
        assert tok.decode(enc.encode(text, allowed_special="all")) == text
    # The vocabulary learned something real: fewer tokens than bytes on held-out text.
    held_out = shakespeare[-20_000:]
    assert len(enc.encode_ordinary(held_out)) < 0.5 * len(held_out.encode())
