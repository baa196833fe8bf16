"""HF formats: tokenizer.json export/import checked with the ``tokenizers`` package, GPT-2's
vocab.json + merges.txt checked with tiktoken's GPT-2 reader, and from_pretrained."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer
from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text
from fastllm.tokenizer.formats.hf_json import to_oniguruma
from fastllm.tokenizer.vocab import derive_merges

from tests.support.encodings import CORPORA, ENCODINGS
from tests.support.text_strategies import text_strategy

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def hf_exports(tmp_path_factory, fastllm_encoding):
    """name -> (fastllm Tokenizer, tokenizers.Tokenizer loaded from its to_hf_json file, path)."""
    folder = tmp_path_factory.mktemp("hf")
    cache = {}

    def get(name):
        if name not in cache:
            ours = fastllm_encoding(name)
            path = folder / f"{name}.json"
            ours.to_hf_json(path)
            cache[name] = (ours, tokenizers.Tokenizer.from_file(str(path)), path)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_hf_export_encodes_real_corpora_identically(name, hf_exports, shared_data):
    ours, hf, _ = hf_exports(name)
    for corpus in CORPORA:
        text = (shared_data / corpus).read_text(encoding="utf-8")
        assert hf.encode(text, add_special_tokens=False).ids == ours.encode_ordinary(text), corpus
    sample = "hi<|endoftext|>there"
    assert hf.encode(sample).ids == ours.encode(sample, allowed_special="all")
    ids = ours.encode(sample, allowed_special="all")
    assert hf.decode(ids, skip_special_tokens=False) == sample


@pytest.mark.parametrize("name", ["gpt2", "o200k_base"])
@given(text=text_strategy)
@settings(max_examples=80, deadline=None)
def test_hf_export_generated_text(name, text, hf_exports):
    ours, hf, _ = hf_exports(name)
    assert hf.encode(text, add_special_tokens=False).ids == ours.encode(text, allowed_special="all")


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_hf_json_import_round_trip(name, hf_exports, fastllm_encoding):
    ours, _, path = hf_exports(name)
    back = Tokenizer.from_hf_json(path)
    assert back.pattern == ENCODINGS[name].pattern  # recognised as the built-in pattern
    assert back.special_tokens == ours.special_tokens
    assert back.mergeable_tokens() == ours.mergeable_tokens()


def test_hf_export_of_custom_pattern_and_trained_like_vocab(tmp_path):
    tokens = [bytes([b]) for b in range(256)] + [b"ab", b"abab", b"12", b"123"]
    ours = Tokenizer(tokens, {"<s>": 260}, r"\p{N}{1,2}+|\p{L}+$|\p{L}+|\s+|.")
    ours.to_hf_json(tmp_path / "t.json")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "t.json"))
    for text in ["ababab 12312 ab<s>abab", "abab\nab", "1234567"]:
        assert hf.encode(text).ids == ours.encode(text, allowed_special="all"), text
    back = Tokenizer.from_hf_json(tmp_path / "t.json")
    assert back.encode("ababab 12312", allowed_special="all") == ours.encode("ababab 12312")


def test_derived_merges_rebuild_every_token(fastllm_encoding):
    tokens = fastllm_encoding("gpt2").mergeable_tokens()
    merges = derive_merges(tokens)
    assert len(merges) == len(tokens) - 256
    rank = {t: i for i, t in enumerate(tokens)}
    assert [rank[a + b] for a, b in merges] == list(range(256, len(tokens)))


@pytest.mark.parametrize(
    "pattern, expected",
    [
        (r"\p{N}{1,3}+", r"(?>\p{N}{1,3})"),
        (r"[a\]]{2}+x", r"(?>[a\]]{2})x"),
        (r"(ab|c){1,}+", r"(?>(ab|c){1,})"),
        (r"\s++$|^a", r"\s++\z|\Aa"),
        (r"[$^]\$", r"[$^]\$"),
        (r"\x{41}{2}+", r"(?>\x{41}{2})"),
    ],
)
def test_oniguruma_rewrite(pattern, expected):
    assert to_oniguruma(pattern) == expected


# ----- GPT-2's vocab.json + merges.txt -----------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_files(tmp_path_factory, fastllm_encoding):
    """A GPT-2 style checkpoint directory (vocab.json, merges.txt) made from the real ranks."""
    ours = fastllm_encoding("gpt2")
    tokens = ours.mergeable_tokens()
    folder = tmp_path_factory.mktemp("gpt2")
    vocab = {bytes_to_text(t): i for i, t in enumerate(tokens)}
    vocab["<|endoftext|>"] = 50256
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{bytes_to_text(a)} {bytes_to_text(b)}" for a, b in derive_merges(tokens)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_gpt2_files_read_by_tiktoken_give_the_real_ranks(gpt2_files, fastllm_encoding, monkeypatch):
    # tiktoken's own GPT-2 reader rebuilds ranks from the merge order: an independent check of the files.
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    ranks = data_gym_to_mergeable_bpe_ranks(str(gpt2_files / "merges.txt"), str(gpt2_files / "vocab.json"))
    assert ranks == {t: i for i, t in enumerate(fastllm_encoding("gpt2").mergeable_tokens())}


def test_from_pretrained_gpt2_vocab_and_merges(gpt2_files, fastllm_encoding, shared_data):
    tok = Tokenizer.from_pretrained(gpt2_files)
    assert tok.pattern == "gpt2" and tok.eot_token == 50256 and tok.n_vocab == 50257
    hf = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(gpt2_files / "vocab.json"), str(gpt2_files / "merges.txt")))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    text = (shared_data / "tinyshakespeare.txt").read_text()[:200_000] + " it's 2024 — naïve café 中文"
    assert tok.encode_ordinary(text) == hf.encode(text).ids == fastllm_encoding("gpt2").encode_ordinary(text)


def test_from_pretrained_prefers_tokenizer_json(gpt2_files, tmp_path, fastllm_encoding):
    # GPT-2's own tokenizer.json layout: ByteLevel(use_regex=True) pre-tokenizer, merges as "a b" strings.
    hf = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(gpt2_files / "vocab.json"), str(gpt2_files / "merges.txt")))
    hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = tokenizers.decoders.ByteLevel()
    hf.add_special_tokens([tokenizers.AddedToken("<|endoftext|>", special=True)])
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = Tokenizer.from_pretrained(tmp_path)
    assert tok.pattern == "gpt2" and tok.special_tokens == {"<|endoftext|>": 50256}
    assert tok.mergeable_tokens() == fastllm_encoding("gpt2").mergeable_tokens()
    assert Tokenizer.from_pretrained(tmp_path / "tokenizer.json").n_vocab == 50257


def test_from_pretrained_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer found"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_pretrained(tmp_path / "nope")


def _small_hf_document(tmp_path):
    tokens = [bytes([b]) for b in range(256)] + [b"ab", b"abc"]
    Tokenizer(tokens, {"<s>": 258}, "gpt2").to_hf_json(tmp_path / "ok.json")
    return json.loads((tmp_path / "ok.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["model"].update(type="WordPiece"), "model type 'WordPiece' is not supported"),
        (lambda d: d.update(normalizer={"type": "NFKC"}), "normalizer 'NFKC' is not supported"),
        (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "ByteLevel"),
        (lambda d: d["pre_tokenizer"]["pretokenizers"].reverse(), "does not end with ByteLevel"),
        (lambda d: d["model"]["vocab"].pop("a"), "rank 97 is missing"),
        (lambda d: d["model"]["vocab"].update({"中": 259}), "not byte-level"),
        (lambda d: d["model"]["merges"].reverse(), "out of merge order"),
        (lambda d: d["model"].update(merges=[["a", "zz"]]), "not in the vocabulary"),
        (lambda d: d["model"].update(merges=[3]), "merge 1 is 3"),
        (lambda d: d.update(model=None), "no 'model' object"),
    ],
)
def test_bad_tokenizer_json(tmp_path, mutate, message):
    document = _small_hf_document(tmp_path)
    mutate(document)
    (tmp_path / "bad.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_hf_json(tmp_path / "bad.json")


def test_truncated_tokenizer_json(tmp_path):
    _small_hf_document(tmp_path)
    data = (tmp_path / "ok.json").read_bytes()
    (tmp_path / "cut.json").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="cut.json: not valid JSON"):
        Tokenizer.from_hf_json(tmp_path / "cut.json")


def test_bad_merges_txt_names_the_line(gpt2_files, tmp_path):
    (tmp_path / "vocab.json").write_bytes((gpt2_files / "vocab.json").read_bytes())
    lines = (gpt2_files / "merges.txt").read_text(encoding="utf-8").split("\n")
    lines[5] = "onlyonefield"
    (tmp_path / "merges.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges.txt, line 6: expected 'A B'"):
        Tokenizer.from_pretrained(tmp_path)
