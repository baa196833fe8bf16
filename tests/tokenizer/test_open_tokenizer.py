"""fastllm.tokenizer.open_tokenizer: one argument names an encoding, a file or a directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastllm.tokenizer import ENDOFTEXT, TOKENIZER_FILE, Tokenizer, open_tokenizer
from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text
from fastllm.tokenizer.vocab import derive_merges

TOKENS = [bytes([b]) for b in range(256)] + [b"th", b"the", b" t", b" the"]



@pytest.fixture
def small():
    return Tokenizer(TOKENS, {ENDOFTEXT: 260}, "gpt2")


def _same(tokenizer, small):
    assert tokenizer.mergeable_tokens() == TOKENS and tokenizer.special_tokens == small.special_tokens
    assert tokenizer.pattern == "gpt2"


def test_names_and_aliases(gpt2_cached):
    assert open_tokenizer("gpt2").encode("hello world") == [31373, 995]
    assert open_tokenizer("gpt2") is open_tokenizer("gpt2")
    # tiktoken's other name for the same file, its own encoding as in tiktoken
    r50k = open_tokenizer("r50k_base")
    assert r50k.name == "r50k_base" and r50k.mergeable_tokens() == open_tokenizer("gpt2").mergeable_tokens()


def test_a_path_spelled_like_a_name_is_a_path(gpt2_cached, tmp_path, monkeypatch, small):
    monkeypatch.chdir(tmp_path)
    small.save(tmp_path / "gpt2" / TOKENIZER_FILE)
    assert open_tokenizer("gpt2").n_vocab == 50257
    _same(open_tokenizer(Path("gpt2")), small)
    _same(open_tokenizer("./gpt2"), small)


def test_files_are_read_by_content(tmp_path, small):
    small.save(tmp_path / "mine.json")
    small.to_hf_json(tmp_path / "hf.json")
    small.save(tmp_path / "tokenizer.json")  # fastllm's format under HF's name
    for name in ("mine.json", "hf.json", "tokenizer.json"):
        _same(open_tokenizer(tmp_path / name), small)
        _same(open_tokenizer(str(tmp_path / name)), small)


def test_directories(tmp_path, small):
    small.save(tmp_path / "data" / TOKENIZER_FILE)
    small.to_hf_json(tmp_path / "hf" / "tokenizer.json")
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    vocab = {bytes_to_text(token): rank for rank, token in enumerate(TOKENS)}
    (gpt2 / "vocab.json").write_text(json.dumps({**vocab, ENDOFTEXT: 260}), encoding="utf-8")
    merges = "".join(f"{bytes_to_text(a)} {bytes_to_text(b)}\n" for a, b in derive_merges(TOKENS))
    (gpt2 / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")
    for name in ("data", "hf", "gpt2"):
        _same(open_tokenizer(tmp_path / name), small)


def test_tiktoken_file_needs_its_pattern(tmp_path, small):
    small.save_tiktoken(tmp_path / "r.tiktoken")
    with pytest.raises(ValueError, match=r"r\.tiktoken.*holds no split pattern"):
        open_tokenizer(tmp_path / "r.tiktoken")
    tokenizer = open_tokenizer(tmp_path / "r.tiktoken", pattern="gpt2")
    assert tokenizer.mergeable_tokens() == TOKENS and tokenizer.special_tokens == {}


def test_errors_name_the_argument(tmp_path, small):
    with pytest.raises(FileNotFoundError, match="'nowhere': not a named encoding .*gpt2"):
        open_tokenizer("nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"empty'.*holds no tokenizer .*{TOKENIZER_FILE}"):
        open_tokenizer(tmp_path / "empty")
    small.save(tmp_path / "t.json")
    with pytest.raises(ValueError, match="t.json'.*only given for a .tiktoken file"):
        open_tokenizer(tmp_path / "t.json", pattern="gpt2")
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="notes.txt"):
        open_tokenizer(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="empty"):
        open_tokenizer("")
    with pytest.raises(TypeError):
        open_tokenizer(3)
