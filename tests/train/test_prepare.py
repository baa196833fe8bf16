import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.train.prepare import document_chunks, prepare_documents, prepare_files
from fastllm.train.data import META_FILE, TOKENIZER_FILE, read_meta, token_dtype

from tests.support.tiny_training import EOT, byte_tokenizer


def split_tokens(out, split):
    meta = read_meta(out)
    parts = [np.fromfile(out / s["file"], dtype=meta["dtype"]) for s in meta["splits"][split]["shards"]]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=meta["dtype"])


def expected_stream(tokenizer, docs):
    ids = []
    for doc in docs:
        ids += tokenizer.encode_ordinary(doc) + [tokenizer.eot_token]
    return ids


def test_tokens_are_the_documents_with_eot_between(tmp_path, tokenizer, documents):
    meta = prepare_documents(documents, tokenizer, tmp_path, val_fraction=0.0, chunk_bytes=500,
                             batch_chars=3000, shard_tokens=5000, progress=False)
    assert split_tokens(tmp_path, "train").tolist() == expected_stream(tokenizer, documents)
    assert meta["documents"] == len(documents)
    assert len(meta["splits"]["train"]["shards"]) > 1  # rolled over at shard_tokens
    assert all(s["tokens"] <= 5000 for s in meta["splits"]["train"]["shards"])
    assert meta["dtype"] == "<u2" and meta["eot_token"] == tokenizer.eot_token
    assert (tmp_path / TOKENIZER_FILE).is_file()


def test_split_keeps_every_token_and_samples_the_whole_corpus(tmp_path, tokenizer, documents):
    meta = prepare_documents(documents, tokenizer, tmp_path, val_fraction=0.1, chunk_bytes=500, progress=False)
    train, val = split_tokens(tmp_path, "train"), split_tokens(tmp_path, "val")
    expected = expected_stream(tokenizer, documents)
    assert len(train) + len(val) == len(expected)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.sort(expected))
    assert 0.05 < len(val) / len(expected) < 0.15
    assert meta["splits"]["val"]["tokens"] == len(val)


def test_dtype_widens_for_large_vocabularies():
    assert token_dtype(65536) == np.dtype("<u2")
    assert token_dtype(65537) == np.dtype("<u4")
    with pytest.raises(ValueError):
        token_dtype(0)


def test_large_vocab_is_stored_as_uint32(tmp_path):
    from fastllm import Tokenizer

    tokens = [bytes([i]) for i in range(256)]
    tok = Tokenizer(tokens, {EOT: 70_000}, "gpt2")
    prepare_documents(["hello world"] * 3, tok, tmp_path, val_fraction=0.0, progress=False)
    stream = split_tokens(tmp_path, "train")
    assert stream.dtype == np.dtype("<u4") and 70_000 in stream.tolist()


lines = st.lists(
    st.text(alphabet=st.sampled_from(list("abcXY 0123'.,!\t\n") + ["é", "東", "🙂"]), max_size=30),
    min_size=1, max_size=40,
).map(lambda ls: "\n".join(ls))


@pytest.fixture(scope="module")
def gpt2(shared_data):
    from fastllm import Tokenizer

    return Tokenizer.from_tiktoken(shared_data / "gpt2.tiktoken", pattern="gpt2", special_tokens={EOT: 50256})


@pytest.fixture(scope="module", params=["gpt2", "cl100k", "o200k"])
def trained(request, documents):
    """A BPE vocabulary trained with each built-in split pattern (merges across many pieces)."""
    from fastllm import Tokenizer

    return Tokenizer.train(iter(documents), 600, pattern=request.param, special_tokens=[EOT])


@settings(max_examples=40, deadline=None)
@given(docs=st.lists(lines, min_size=1, max_size=4), chunk=st.integers(1, 60))
def test_file_chunking_never_changes_the_tokens(trained, tmp_path_factory, docs, chunk):
    """Cutting files into small chunks gives exactly the tokens of whole-document encoding."""
    out = tmp_path_factory.mktemp("p")
    path = out / "in.txt"
    path.write_bytes("\n\f\n".join(docs).encode())
    prepare_files([path], trained, out / "data", val_fraction=0.0, chunk_bytes=chunk, progress=False)
    rebuilt = [d + "\n" for d in docs[:-1]] + [docs[-1]]
    assert split_tokens(out / "data", "train").tolist() == expected_stream(trained, rebuilt)


def test_real_corpus_with_gpt2_matches_tiktoken(gpt2, shared_data, tmp_path):
    """Chunked preparation of a 1 MB file gives tiktoken's tokens of the whole file."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import r50k_pat_str

    path = shared_data / "tinyshakespeare.txt"
    prepare_files([path], gpt2, tmp_path, val_fraction=0.0, chunk_bytes=4096, progress=False)
    enc = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str,
                            mergeable_ranks=load_tiktoken_bpe(str(shared_data / "gpt2.tiktoken")),
                            special_tokens={EOT: 50256})
    expected = enc.encode_ordinary(path.read_text(encoding="utf-8")) + [50256]
    assert split_tokens(tmp_path, "train").tolist() == expected


def test_jsonl_documents_and_line_numbered_errors(tmp_path, tokenizer):
    good = tmp_path / "docs.jsonl"
    good.write_text(json.dumps({"text": "first doc"}) + "\n\n" + json.dumps({"text": "second"}) + "\n")
    prepare_files([good], tokenizer, tmp_path / "a", val_fraction=0.0, progress=False)
    assert split_tokens(tmp_path / "a", "train").tolist() == expected_stream(tokenizer, ["first doc", "second"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: malformed JSON"):
        prepare_files([bad], tokenizer, tmp_path / "b", progress=False)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"wrong.jsonl:1: .*\"text\""):
        prepare_files([wrong], tokenizer, tmp_path / "c", progress=False)


def test_bad_inputs_give_clear_errors(tmp_path, tokenizer):
    from fastllm import Tokenizer

    with pytest.raises(ValueError, match="no input files"):
        prepare_files([], tokenizer, tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        prepare_files([tmp_path / "missing.txt"], tokenizer, tmp_path / "x")
    binary = tmp_path / "latin1.txt"
    binary.write_bytes(b"caf\xe9\n")
    with pytest.raises(ValueError, match="latin1.txt is not valid UTF-8"):
        prepare_files([binary], tokenizer, tmp_path / "x", progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    # an empty file is named as empty (it used to be called "too small for a validation split")
    with pytest.raises(ValueError, match=r"empty\.txt\) is empty"):
        prepare_files([empty], tokenizer, tmp_path / "x", progress=False)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [".fastllm.lock"]  # no orphan shard
    with pytest.raises(ValueError, match="input is empty"):
        prepare_documents([], tokenizer, tmp_path / "x", progress=False)
    no_eot = Tokenizer([bytes([i]) for i in range(256)], {}, "gpt2")
    with pytest.raises(ValueError, match="endoftext"):
        prepare_documents(["text"], no_eot, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="val_fraction"):
        prepare_documents(["text"], tokenizer, tmp_path / "x", val_fraction=1.5, progress=False)
    with pytest.raises(TypeError):
        list(document_chunks([b"bytes"], 10))
    assert not (tmp_path / "x" / META_FILE).exists()


def test_read_meta_errors(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError):
        read_meta(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a prepared data directory"):
        read_meta(tmp_path)
    (tmp_path / META_FILE).write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_meta(tmp_path)
    assert read_meta(data_dir)["vocab_size"] == byte_tokenizer(8).n_vocab


def test_tokenizer_sources(tmp_path, tokenizer, data_dir, pretrained_dir):
    from fastllm.tokenizer import open_tokenizer

    tokenizer.save(tmp_path / "tok.json")
    text = "the answer is 42"
    for spec in (tmp_path / "tok.json", data_dir, pretrained_dir, pretrained_dir / "tokenizer.json"):
        assert open_tokenizer(spec).encode_ordinary(text) == tokenizer.encode_ordinary(text), spec
