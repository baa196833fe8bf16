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


def test_merges_out_of_rank_order_merge_by_the_list(tmp_path):
    """Merges listed out of rank order are no error (tokenizers reads them): that file
    merges by its list (see test_listed_merges.py), with tokenizers' ids."""
    document = _small_hf_document(tmp_path)
    document["model"]["merges"].reverse()
    (tmp_path / "reversed.json").write_text(json.dumps(document), encoding="utf-8")
    tok = Tokenizer.from_hf_json(tmp_path / "reversed.json")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "reversed.json"))
    assert tok.merges() == [(b"ab", b"c"), (b"a", b"b")]
    for text in ["abc", "abcd abab", "xabcabc"]:
        assert tok.encode_ordinary(text) == hf.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["model"].update(type="WordPiece"), "model type 'WordPiece' is not supported"),
        (lambda d: d.update(normalizer={"type": "NFKC"}), "normalizer 'NFKC' is not supported"),
        (lambda d: d.update(pre_tokenizer={"type": "Whitespace"}), "ByteLevel"),
        (lambda d: d["pre_tokenizer"]["pretokenizers"].reverse(), "does not end with ByteLevel"),
        (lambda d: d["model"]["vocab"].pop("a"), "merge 1 \\('a', 'b'\\) uses 'a', which is not in the vocabulary"),
        (lambda d: d["model"]["vocab"].update({"中": 259}), "not byte-level"),
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


def _built_texts(merges: list) -> list:
    """What each merge of a tokenizer.json ("A B" or [A, B]) builds, as text."""
    return ["".join(m) if isinstance(m, list) else m.replace(" ", "") for m in merges]


@st.composite
def _hf_documents(draw):
    """A tokenizer.json of a small random vocabulary as fastllm writes it, often damaged in one
    of the ways the readers must refuse or treat alike."""
    import copy

    from fastllm.tokenizer.formats.hf_json import hf_json_dict
    from fastllm.tokenizer.patterns import builtin_pattern_regexes
    from fastllm.tokenizer.vocab import VocabData

    tokens = [bytes([b]) for b in range(256)]
    for _ in range(draw(st.integers(0, 12))):
        made = draw(st.sampled_from(tokens)) + draw(st.sampled_from(tokens))
        if made not in tokens:
            tokens.append(made)
    n = len(tokens)
    doc = copy.deepcopy(hf_json_dict(VocabData(tokens, {"<s>": n}, "gpt2"), builtin_pattern_regexes()["gpt2"]))
    model = doc["model"]
    vocab, merges = model["vocab"], model["merges"]
    texts = list(vocab)
    k = draw(st.integers(0, n - 1))
    if draw(st.booleans()):
        model["merges"] = merges = [" ".join(m) for m in merges]
    if draw(st.booleans()):
        model["ignore_merges"] = False
    damage = draw(st.sampled_from([
        "none", "swap merges", "drop merge", "repeat merge", "gap", "id twice", "negative id", "bool id",
        "float id", "not byte-level", "bad merge", "special below", "added built", "added unbuilt", "added one byte",
        "converter merges",
    ]))
    if damage == "converter merges":  # every split of each token, as files converted from tiktoken ranks list
        from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text
        from tests.support.merge_lists import converter_merges

        # x+y+z with x+y and y+z ranked before it: two splits, so two merges build it.
        x, y, z = (draw(st.sampled_from(tokens[:256])) for _ in range(3))
        tokens += [t for t in dict.fromkeys((x + y, y + z, x + y + z)) if t not in tokens]
        vocab.clear()
        vocab.update({bytes_to_text(t): i for i, t in enumerate(tokens)})
        vocab["<s>"] = doc["added_tokens"][0]["id"] = len(tokens)
        pairs = [[bytes_to_text(a), bytes_to_text(b)] for a, b in converter_merges(tokens)]
        strings = bool(merges) and isinstance(merges[0], str)
        merges[:] = [" ".join(p) for p in pairs] if strings else pairs
    elif damage == "swap merges" and len(merges) > 1:
        merges[0], merges[-1] = merges[-1], merges[0]
    elif damage == "drop merge" and merges:
        merges.pop(draw(st.integers(0, len(merges) - 1)))
    elif damage == "repeat merge" and merges:
        merges.append(merges[0])
    elif damage == "gap":
        vocab[texts[k]] = n + 3
    elif damage == "id twice":
        vocab[texts[k]] = vocab[texts[k - 1]]
    elif damage == "negative id":
        vocab[texts[k]] = -1
    elif damage == "bool id":
        vocab[texts[k]] = True
    elif damage == "float id":
        vocab[texts[k]] = float(vocab[texts[k]])
    elif damage == "not byte-level":
        vocab["a b"] = n + 1
    elif damage == "bad merge":
        merges.append(draw(st.sampled_from(["a b c", "ab", 3, ["a"], ["a", 1], "a  b"])))
    elif damage == "special below":
        doc["added_tokens"][0]["id"] = vocab["<s>"] = 5
    elif damage.startswith("added"):
        built = _built_texts(merges)
        pick = {"added built": built[-1:], "added unbuilt": [t for t in texts[256:n] if t not in built][:1],
                "added one byte": [texts[k]]}[damage]
        for text in pick:
            doc["added_tokens"].append({"id": vocab[text], "content": text, "single_word": False, "lstrip": False,
                                        "rstrip": False, "normalized": False, "special": draw(st.booleans())})
    return damage, doc


@given(_hf_documents())
@settings(max_examples=300, deadline=None)
def test_fast_tokenizer_json_vocabulary_agrees_with_the_python_reader(case):
    # The core takes the vocabulary and merges of a file with nothing unusual; whatever it
    # takes it must read as the Python reader does, and whatever that refuses, it must leave
    # to it (so the error is the Python reader's, naming the problem).
    import copy
    from unittest import mock

    from fastllm import _core
    from fastllm.tokenizer.formats import hf_json

    damage, doc = case

    def outcome(fast: bool):
        reader = _core.read_hf_vocab_plain if fast else (lambda *args: None)
        with mock.patch.object(hf_json._core, "read_hf_vocab_plain", reader):
            try:
                return hf_json.parse_hf_json(copy.deepcopy(doc), "t.json")
            except ValueError as exc:
                return str(exc)

    assert outcome(True) == outcome(False)
    model = doc["model"]
    added = [(a["content"], a["id"], a["special"]) for a in doc["added_tokens"]]
    taken = _core.read_hf_vocab_plain(model["vocab"], model["merges"], added, not model.get("ignore_merges", False))
    if damage == "none" and model.get("ignore_merges", True):
        assert taken is not None and taken[1] is None  # the files fastllm writes take the fast path, by rank
    if damage == "converter merges":
        built = _built_texts(model["merges"])
        if len(set(built)) < len(built):
            assert taken is not None and taken[1] is not None  # several merges for a token: a list, on the fast path


@given(_hf_documents(), st.sampled_from(["\n", "\r\n"]), st.booleans(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_fast_gpt2_files_reader_agrees_with_the_python_one(tmp_path_factory, case, end, header, blank):
    # vocab.json + merges.txt go through the same fast reader (merges as the file's lines).
    from unittest import mock

    from fastllm import _core
    from fastllm.tokenizer.formats import gpt2_vocab

    damage, doc = case
    folder = tmp_path_factory.mktemp("gpt2-files")
    (folder / "vocab.json").write_text(json.dumps(doc["model"]["vocab"]), encoding="utf-8")
    lines = [" ".join(map(str, m)) if isinstance(m, list) else str(m) for m in doc["model"]["merges"]]
    lines = (["#version: 0.2"] if header else []) + lines + ([""] if blank else [])
    (folder / "merges.txt").write_text(end.join(lines) + end, encoding="utf-8")

    def outcome(fast: bool):
        reader = _core.read_hf_vocab_plain if fast else (lambda *args: None)
        with mock.patch.object(gpt2_vocab._core, "read_hf_vocab_plain", reader):
            try:
                return gpt2_vocab.read_gpt2_vocab(folder / "vocab.json", folder / "merges.txt", ("<s>",))
            except ValueError as exc:
                return str(exc)

    assert outcome(True) == outcome(False)


def test_fast_gpt2_files_reader_takes_real_files(gpt2_files, fastllm_encoding, monkeypatch):
    from fastllm import _core
    from fastllm.tokenizer.formats import gpt2_vocab

    answers, real = [], _core.read_hf_vocab_plain

    def counted(*args):
        answers.append(real(*args))
        return answers[-1]

    monkeypatch.setattr(gpt2_vocab._core, "read_hf_vocab_plain", counted, raising=True)
    vocab = gpt2_vocab.read_gpt2_vocab(gpt2_files / "vocab.json", gpt2_files / "merges.txt")
    assert answers and answers[0] is not None
    assert vocab.tokens == fastllm_encoding("gpt2").mergeable_tokens()


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_fast_tokenizer_json_reader_takes_real_exports(name, hf_exports):
    from fastllm import _core

    ours, _, path = hf_exports(name)
    doc = json.loads(path.read_bytes())
    model, added = doc["model"], [(a["content"], a["id"], a["special"]) for a in doc["added_tokens"]]
    taken = _core.read_hf_vocab_plain(model["vocab"], model["merges"], added, not model["ignore_merges"])
    assert taken == (ours._core.mergeable_tokens(), None)


def _read_both_ways(path):
    """read_hf_json's outcome (VocabData or the ValueError's message) with the file split in
    Rust, and with the whole file parsed by Python's json (the split refused)."""
    from unittest import mock

    from fastllm.tokenizer.formats import hf_json

    def outcome(split: bool):
        splitter = hf_json._core.split_hf_json if split else (lambda data: None)
        with mock.patch.object(hf_json._core, "split_hf_json", splitter):
            try:
                return hf_json.read_hf_json(path)
            except ValueError as exc:
                return str(exc)

    return outcome(True), outcome(False)


@given(_hf_documents())
@settings(max_examples=200, deadline=None)
def test_tokenizer_json_split_in_rust_reads_as_python_json_does(tmp_path_factory, case):
    # The model's vocab and merges parsed in Rust, the rest by Python's json: the same
    # vocabulary, or the same error, as parsing it all in Python.
    from fastllm import _core

    damage, doc = case
    path = tmp_path_factory.mktemp("split") / "tokenizer.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    split, whole = _read_both_ways(path)
    assert split == whole
    if damage == "none":
        assert _core.split_hf_json(path.read_bytes()) is not None


@pytest.mark.parametrize(
    "extra, more, trailer, taken",
    [
        ('"ab": 256', "", "", True),
        ('"ab": 256, "a": 257', "", "", False),  # a text twice: Python's json keeps the last
        ('"ab": 256.0', "", "", False),
        ('"ab": NaN', "", "", False),
        ('"ab": 99999999999999999999999', "", "", False),
        ('"ab": 256, "\\ud800": 257', "", "", False),  # a lone surrogate, which Rust's strings cannot hold
        ('"ab": 256', "", " x", False),
        ('"ab": 256', ', "model": {}', "", False),
    ],
)
def test_tokenizer_json_texts_the_rust_split_leaves_to_python(tmp_path, extra, more, trailer, taken):
    """JSON that serde_json refuses, or that could read otherwise in Rust, goes to Python's json
    whole: the same outcome (a vocabulary, or the same error naming the file)."""
    from fastllm import _core
    from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text

    byte_entries = ", ".join(f"{json.dumps(bytes_to_text(bytes([b])))}: {b}" for b in range(256))
    model = f'{{"type": "BPE", "vocab": {{{byte_entries}, {extra}}}, "merges": ["a b"]}}'
    pre = '{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}'
    path = tmp_path / "tokenizer.json"
    decoder = '{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}'
    path.write_text(f'{{"model": {model}, "pre_tokenizer": {pre}, "decoder": {decoder}{more}}}{trailer}', encoding="utf-8")
    assert (_core.split_hf_json(path.read_bytes()) is not None) == taken
    split, whole = _read_both_ways(path)
    assert split == whole
    if taken:
        assert not isinstance(split, str) and len(split.tokens) == 257


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_tokenizer_json_split_in_rust_takes_real_exports(name, hf_exports):
    from fastllm import _core

    _, _, path = hf_exports(name)
    assert _core.split_hf_json(path.read_bytes()) is not None
    split, whole = _read_both_ways(path)
    assert split == whole and not isinstance(split, str)
