"""HF ``tokenizer.json`` pipelines: normalizers, pre-tokenizer shapes, added tokens, post-processors.

Each file is built with the ``tokenizers`` library itself (GPT-2's ranks, or a vocabulary
``tokenizers`` trains) and read with :meth:`Tokenizer.from_hf_json`; the reference is
``tokenizers`` encoding the same file, on the real corpora and on generated text. fastllm's
writer is checked the other way round, with ``tokenizers`` and transformers'
``PreTrainedTokenizerFast`` reading what it wrote. Unsupported files must be refused.
"""

from __future__ import annotations

import json
import pickle
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer
from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text
from fastllm.tokenizer.formats.oniguruma import from_oniguruma, to_oniguruma
from fastllm.tokenizer.pipeline import AddedToken as FastAddedToken
from fastllm.tokenizer.pipeline import ByteLevel, Pipeline, Split
from fastllm.tokenizer.vocab import derive_merges

from tests.support.encodings import CORPORA
from tests.support.text_strategies import FRAGMENTS, text_strategy

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, Regex, decoders, models, normalizers, processors  # noqa: E402
from tokenizers import pre_tokenizers as pt  # noqa: E402

# The split regexes of real models' tokenizer.json files (Oniguruma spelling).
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
DEEPSEEK_V3 = [
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
]
BEHAVIORS = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]


def byte_level(prefix: bool = False, regex: bool = False):
    return pt.ByteLevel(add_prefix_space=prefix, use_regex=regex)


def split(regex: str, behavior: str = "isolated", invert: bool = False):
    return pt.Split(Regex(regex), behavior, invert=invert)


#: name -> (normalizer, pre-tokenizer): the shapes real models use, and each Split behavior.
SHAPES = {
    "gpt2": (None, byte_level(regex=True)),
    "gpt2_prefix_space": (None, byte_level(prefix=True, regex=True)),
    "llama3": (None, pt.Sequence([split(LLAMA3), byte_level()])),
    "qwen2": (normalizers.NFC(), pt.Sequence([split(QWEN2), byte_level()])),
    "deepseek_v3": (normalizers.Sequence([]), pt.Sequence([*map(split, DEEPSEEK_V3), byte_level()])),
    "digits_starcoder": (None, pt.Sequence([pt.Digits(individual_digits=True), byte_level(prefix=True, regex=True)])),
    # Forms the encoder runs in one pass: StarCoder's own (no prefix space), and
    # class splits whose runs a later class and a scanner's pattern cut again.
    "digits_byte_level": (None, pt.Sequence([pt.Digits(individual_digits=True), byte_level(regex=True)])),
    "class_runs_nested": (None, pt.Sequence([split(r"\p{N}{1,3}"), split("[0-4]{1,2}"), split(LLAMA3), byte_level()])),
    "digits_runs_nfc": (normalizers.Sequence([normalizers.NFC()]), pt.Sequence([pt.Digits(), byte_level(regex=True)])),
    "gap": (None, pt.Sequence([split("[a-z]+"), byte_level()])),
    # tiktoken's semantics in HF's terms (what fastllm writes for such a plain pattern).
    "gap_removed": (None, pt.Sequence([split("[a-z]+", "removed", invert=True), byte_level()])),
    "string_pattern": (None, pt.Sequence([pt.Split(" ", "merged_with_next"), byte_level()])),
    # Oniguruma-only readings: line anchors, its \w and \b, "{n,m}+" as a repeated interval.
    "oniguruma_dialect": (None, pt.Sequence([split(r"^\s+|\w+$|\b\w|\d{1,2}+|(?m:.)"), byte_level()])),
    **{
        f"{behavior}{'_inverted' if invert else ''}": (
            None,
            pt.Sequence([split(r"\s+|\p{N}", behavior, invert), split(r"\p{L}+|[^\p{L}]"), byte_level(prefix=True)]),
        )
        for behavior in BEHAVIORS
        for invert in (False, True)
    },
}
#: Shapes whose encoding drops text (Removed) or adds spaces: no decode round trip.
LOSSY = {name for name in SHAPES if name.startswith(("removed", "gpt2_prefix", "digits_starcoder", "gap_removed"))} | {
    f"{b}{s}" for b in BEHAVIORS for s in ("", "_inverted")
}

EXTRA_FRAGMENTS = ["1234567", "٣٤", "日本語の", "한국어", "e\u0301", "A\u030a", "\u1100\u1161", "x\r\n\r\n y", "  \t "]
texts = st.one_of(text_strategy, st.lists(st.sampled_from(FRAGMENTS + EXTRA_FRAGMENTS), max_size=20).map("".join))


@pytest.fixture(scope="module")
def gpt2_model(shared_data):
    """GPT-2's ranks as a tokenizers BPE model's (vocab, merges)."""
    tokens = Tokenizer.from_tiktoken(shared_data / "gpt2.tiktoken", pattern="gpt2").mergeable_tokens()
    vocab = {bytes_to_text(token): rank for rank, token in enumerate(tokens)}
    merges = [(bytes_to_text(a), bytes_to_text(b)) for a, b in derive_merges(tokens)]
    return vocab, merges


def hf_file(folder, name, vocab, merges, normalizer, pre, *, post=None, added=(), special=(), ignore_merges=True):
    """Builds a tokenizer with ``tokenizers``, saves it as ``folder/name.json`` and returns
    (the path, ``tokenizers`` reading that file)."""
    hf = tokenizers.Tokenizer(models.BPE(vocab, merges, ignore_merges=ignore_merges))
    if normalizer is not None:
        hf.normalizer = normalizer
    hf.pre_tokenizer = pre
    hf.decoder = decoders.ByteLevel()
    if post is not None:
        hf.post_processor = post
    if special:
        hf.add_special_tokens(list(special))
    if added:
        hf.add_tokens(list(added))
    path = folder / f"{name}.json"
    hf.save(str(path))
    return path, tokenizers.Tokenizer.from_file(str(path))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, gpt2_model):
    """name -> (path, tokenizers.Tokenizer, fastllm Tokenizer) over GPT-2's ranks."""
    folder = tmp_path_factory.mktemp("shapes")
    cache = {}

    def get(name):
        if name not in cache:
            normalizer, pre = SHAPES[name]
            path, hf = hf_file(folder, name, *gpt2_model, normalizer, pre)
            cache[name] = (path, hf, Tokenizer.from_hf_json(path))
        return cache[name]

    return get


def hf_ids(hf, text, add_special_tokens=False):
    return hf.encode(text, add_special_tokens=add_special_tokens).ids


# ----- pre-tokenizer shapes and normalizers ----------------------------------------------


@pytest.fixture(scope="module")
def corpus_samples(corpora):
    """A quarter of each corpus: every fourth line, so that every language of multilingual.txt is in."""
    return {name: "".join(text.splitlines(keepends=True)[::4]) for name, text in corpora.items()}


@pytest.mark.parametrize("name", list(SHAPES))
def test_shapes_encode_the_corpora_like_tokenizers(name, shapes, corpora, corpus_samples):
    _, hf, ours = shapes(name)
    # The pipelines of real models get the whole corpora (tokenizers takes ~3 s a megabyte), the others a quarter.
    texts = corpora if name in ("llama3", "qwen2", "deepseek_v3") else corpus_samples
    for corpus in CORPORA:
        text = texts[corpus]
        assert ours.encode_ordinary(text) == hf_ids(hf, text), corpus
        assert ours.split(text[:20_000]) == [p for p, _ in _hf_pieces(hf, text[:20_000])], corpus


def _hf_pieces(hf, text):
    normalized = hf.normalizer.normalize_str(text) if hf.normalizer else text
    pieces = hf.pre_tokenizer.pre_tokenize_str(normalized)
    # tokenizers gives the pieces in its byte-to-character map.
    return [(_from_byte_level(piece), offsets) for piece, offsets in pieces]


def _from_byte_level(text: str) -> str:
    from fastllm.tokenizer.formats.gpt2_vocab import text_to_bytes

    return text_to_bytes(text).decode("utf-8", "replace")


@pytest.mark.parametrize("name", list(SHAPES))
@given(text=texts)
@settings(max_examples=40, deadline=None)
def test_shapes_encode_generated_text_like_tokenizers(name, text, shapes):
    _, hf, ours = shapes(name)
    ids = ours.encode_ordinary(text)
    assert ids == hf_ids(hf, text)
    assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)
    if name not in LOSSY:
        normalized = unicodedata.normalize("NFC", text) if "qwen2" in name or "nfc" in name else text
        assert ours.decode(ids) == normalized


def test_single_split_shapes_need_no_pipeline(shapes):
    # A lone Split runs as a plain pattern where both split alike: a pattern that matches all
    # text (on its scanner), or Removed with invert (tiktoken's semantics for any pattern).
    for name in ("gpt2", "llama3", "gap_removed"):
        assert shapes(name)[2].pipeline is None, name
    assert shapes("gpt2")[2].pattern == "gpt2"
    assert shapes("gap_removed")[2].pattern == "[a-z]+"
    # A Split(Isolated) whose pattern leaves text unmatched keeps that text: a pipeline step.
    gap = shapes("gap")[2]
    assert gap.pipeline == Pipeline(steps=(Split("[a-z]+"), ByteLevel())) and gap.pattern == "[a-z]+"
    qwen = shapes("qwen2")[2]
    assert qwen.pipeline == Pipeline(normalizer="nfc") and qwen.pattern == from_oniguruma(QWEN2)
    deepseek = shapes("deepseek_v3")[2].pipeline
    assert deepseek.normalizer is None and len(deepseek.steps) == 4 and deepseek.steps[-1] == ByteLevel()


def test_gap_text_is_kept_in_tokenizer_json_and_left_out_in_a_plain_pattern(shapes, gpt2_model, tmp_path):
    """Issue 10's gap case. A tokenizer.json Split regex that leaves text unmatched keeps it
    as pieces, as tokenizers does (6 ids); the same regex as a plain (tiktoken) pattern leaves
    it out, as tiktoken does (2 ids); each round-trips through the tokenizer.json fastllm writes."""
    tiktoken = pytest.importorskip("tiktoken")
    _, hf, ours = shapes("gap")
    text = "hello, World 123!"
    assert ours.encode(text) == hf_ids(hf, text) and len(hf_ids(hf, text)) == 6
    assert ours.decode(ours.encode(text)) == text
    assert ours.split(text) == ["hello", ", W", "orld", " 123!"]
    tokens = list(map(_token_bytes, sorted(gpt2_model[0], key=gpt2_model[0].get)))
    plain = Tokenizer(tokens, {}, "[a-z]+")
    ranks = {token: rank for rank, token in enumerate(tokens)}
    reference = tiktoken.Encoding("gap", pat_str="[a-z]+", mergeable_ranks=ranks, special_tokens={})
    assert plain.encode(text) == reference.encode(text) and len(plain.encode(text)) == 2
    assert plain.split(text) == ["hello", "orld"]
    assert shapes("gap_removed")[2].encode(text) == plain.encode(text) == hf_ids(shapes("gap_removed")[1], text)
    # What fastllm writes keeps each semantics in tokenizers and when read back.
    for name, tok in (("plain", plain), ("gap", ours)):
        tok.to_hf_json(tmp_path / f"{name}.json")
        written = tokenizers.Tokenizer.from_file(str(tmp_path / f"{name}.json"))
        assert hf_ids(written, text) == tok.encode(text), name
        again = Tokenizer.from_hf_json(tmp_path / f"{name}.json")
        assert again.encode(text) == tok.encode(text) and again.pipeline == tok.pipeline, name


def test_a_split_the_regex_engine_gives_up_on_raises(gpt2_model, tmp_path):
    """The no-silent-loss rule holds in a pipeline too: a Split regex that backtracks past the
    engine's limit raises ValueError naming the pattern and the place, never drops the text."""
    bad = "(?:(?=a)a|a)*b|."
    path, _ = hf_file(tmp_path, "bad", *gpt2_model, None, pt.Sequence([split(" ", "removed"), split(bad), byte_level()]))
    tok = Tokenizer.from_hf_json(path)
    assert tok.pipeline is not None
    text = "xy é" + "a" * 40
    for call in (tok.encode, tok.encode_ordinary, tok.split, lambda t: tok.encode_batch([t, t])):
        with pytest.raises(ValueError, match=r"gave up on split pattern .*\(\?:\(\?=a\)a\|a\)\*b.* at character 4 \(byte 5\)"):
            call(text)
    with pytest.raises(ValueError, match="text 1 of the batch"):
        tok.encode_batch(["ok", text])


def test_a_normalized_plain_pattern_the_regex_engine_gives_up_on_raises(gpt2_model, tmp_path):
    """NFC around the split pattern alone (Qwen's shape) is encoded stretch by stretch with the
    pattern's own scanner; an error still names the place in the text as given, or in its
    normalized form where normalizing changed it."""
    bad = "(?:(?=a)a|a)*b|."
    # Its inverted matches removed: the plain pattern's semantics, so the core's pattern.
    pre = pt.Sequence([split(bad, "removed", invert=True), byte_level()])
    path, hf = hf_file(tmp_path, "bad_nfc", *gpt2_model, normalizers.NFC(), pre, special=[AddedToken("<s>", special=True)])
    tok = Tokenizer.from_hf_json(path)
    assert tok.pipeline is not None and tok.pipeline.normalizer == "nfc" and tok.pipeline.steps == ()
    assert tok.encode("xy e\u0301 ab") == hf_ids(hf, "xy e\u0301 ab")
    for call in (tok.encode, tok.encode_ordinary, lambda t: tok.encode_batch([t, t])):
        with pytest.raises(ValueError, match=r"gave up on split pattern .* at character 4 \(byte 5\)"):
            call("xy \u00e9" + "a" * 40)
        with pytest.raises(ValueError, match="normalized form"):
            call("xy e\u0301" + "a" * 40)
    # After an added token: the place is in the whole text, not in the stretch after it.
    with pytest.raises(ValueError, match=r"at character 7 \(byte 8\)"):
        tok.encode("<s>xy \u00e9" + "a" * 40, allowed_special="all")


def _token_bytes(text: str) -> bytes:
    from fastllm.tokenizer.formats.gpt2_vocab import text_to_bytes

    return text_to_bytes(text)


def test_trained_vocabulary(tmp_path, corpora, corpus_samples):
    """A vocabulary ``tokenizers`` trains (alphabet first, ids in merge order,
    ignore_merges=false), with DeepSeek V3's pre-tokenizer."""
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pt.Sequence([*map(split, DEEPSEEK_V3), byte_level()])
    hf.decoder = decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=2000, initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False)
    hf.train_from_iterator([corpora["tinyshakespeare.txt"][:200_000], corpus_samples["multilingual.txt"][:100_000]], trainer)
    hf.add_special_tokens(["<|end|>"])
    hf.save(str(tmp_path / "trained.json"))
    assert json.loads((tmp_path / "trained.json").read_text())["model"]["ignore_merges"] is False
    ours = Tokenizer.from_hf_json(tmp_path / "trained.json")
    for text in (*corpus_samples.values(), "x<|end|>y"):
        assert ours.encode(text, allowed_special="all") == hf_ids(hf, text)


# ----- added tokens ----------------------------------------------------------------------

SPECIAL = [
    AddedToken("<|begin_of_text|>", special=True, normalized=False),
    AddedToken("<mask>", special=True, lstrip=True, normalized=False),
    AddedToken("<|im_end|>", special=True, rstrip=True, normalized=False),
]
ADDED = [
    AddedToken("<tool_call>", special=False, normalized=False, rstrip=True),
    AddedToken("cafe\u0301!", special=False, normalized=True),  # found in the NFC text, as "café!"
    AddedToken("ab", special=False, single_word=True, normalized=False),
    AddedToken("\n\n", special=False, normalized=False),
    AddedToken(" Hello", special=False, normalized=True, lstrip=True),
]
ADDED_FRAGMENTS = [
    "<|begin_of_text|>", "<mask>", " <mask> ", "<|im_end|>", "<|im_end|>\n", "<tool_call>", "<tool_call>  ",
    "café!", "cafe\u0301!", "ab", " ab ", "cab", "ab_", "\n\n", "\n\n\n", " Hello", "  Hello", "<|endoftext|>",
]
#: The id of added "café!". tokenizers decodes an added token through its byte map, where
#: "é" stands for the byte 0xE9: it gives "caf\ufffd!"; fastllm gives the text back.
CAFE = 50261
added_texts = st.lists(st.sampled_from(ADDED_FRAGMENTS + FRAGMENTS[:60] + ["x", " ", "\t"]), max_size=16).map("".join)


@pytest.fixture(scope="module")
def with_added(tmp_path_factory, gpt2_model):
    folder = tmp_path_factory.mktemp("added")
    special = [AddedToken("<|endoftext|>", special=True, normalized=True), *SPECIAL]
    path, hf = hf_file(
        folder, "added", *gpt2_model, normalizers.NFC(), pt.Sequence([split(LLAMA3), byte_level()]),
        special=special, added=ADDED,
    )
    return path, hf, Tokenizer.from_hf_json(path)


def test_added_tokens_are_read_with_their_flags(with_added):
    _, hf, ours = with_added
    assert ours.special_tokens == {"<|endoftext|>": 50256, "<|begin_of_text|>": 50257, "<mask>": 50258, "<|im_end|>": 50259}
    described = {token.content: token for token in ours.pipeline.added_tokens}
    assert described["<mask>"].lstrip and described["<|im_end|>"].rstrip and described["ab"].single_word
    assert not described["<tool_call>"].special and described["<tool_call>"].id == 50260
    assert described["ab"].id == 397  # the model vocabulary's id for "ab": a mergeable token
    assert ours.n_vocab == hf.get_vocab_size() == 50264


@given(text=added_texts)
@settings(max_examples=150, deadline=None)
def test_added_tokens_encode_like_tokenizers(text, with_added):
    _, hf, ours = with_added
    ids = ours.encode(text, allowed_special="all")
    assert ids == hf_ids(hf, text)
    if CAFE not in ids:
        assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)


def test_added_token_text_decodes_back(with_added):
    _, hf, ours = with_added
    ids = ours.encode("cafe\u0301! caf\u00e9!")
    assert ids == [CAFE, 220, CAFE] and ours.decode(ids) == "caf\u00e9! caf\u00e9!"  # the normalized content
    assert hf.decode(ids) == "caf\ufffd! caf\ufffd!"  # tokenizers' own reading


@given(text=added_texts)
@settings(max_examples=60, deadline=None)
def test_special_tokens_follow_the_policy_added_ones_always_match(text, with_added):
    _, hf, ours = with_added
    present = [s for s in ours.special_tokens if s in text]
    if present:
        with pytest.raises(ValueError, match="disallowed special token"):
            ours.encode(text)
    # encode_ordinary: special tokens are text, the others still match (tokenizers' encode_special_tokens).
    hf.encode_special_tokens = True
    try:
        assert ours.encode_ordinary(text) == hf_ids(hf, text)
    finally:
        hf.encode_special_tokens = False
    if set(present) <= {"<mask>"}:
        assert ours.encode(text, allowed_special={"<mask>"}) == hf_ids(hf, text)


def test_added_token_examples(with_added):
    _, hf, ours = with_added
    mask, end, tool = 50258, 50259, 50260
    assert ours.encode("a  <mask>  b", allowed_special="all")[1:2] == [mask]
    assert ours.encode("x<|im_end|>  \n y", allowed_special="all")[1:3] == [end, 88]  # "  \n " stripped
    assert ours.encode_ordinary("<tool_call>   x")[:2] == [tool, 87]
    for text in ("a  <mask>  b", "x<|im_end|>  \n y", "cafe\u0301! caf\u00e9!", "<tool_call>   x", "ab cab"):
        assert ours.encode(text, allowed_special="all") == hf_ids(hf, text), text


def test_batch_and_numpy_follow_the_pipeline(with_added):
    _, hf, ours = with_added
    batch = ["<mask> café!", "ab\n\nab", "<tool_call>x"] * 5
    assert ours.encode_batch(batch, allowed_special="all") == [hf_ids(hf, t) for t in batch]
    assert ours.encode_to_numpy(batch[0], allowed_special="all").tolist() == hf_ids(hf, batch[0])


#: Added tokens whose strip flags swallow whitespace in which later matches of theirs (or of
#: other tokens) start. tokenizers drops a match left empty by the strips; fastllm must too.
STRIP_TOKENS = {
    "both": [AddedToken("\n\n", special=False, normalized=False, lstrip=True, rstrip=True)],
    "right": [AddedToken("\n\n", special=False, normalized=False, rstrip=True)],
    "left": [AddedToken("  ", special=False, normalized=False, lstrip=True)],
    "space_after_word": [
        AddedToken(" ", special=True, normalized=True, lstrip=True),
        AddedToken("Hello", special=False, normalized=True, rstrip=True),
    ],
    "nfc_tab": [AddedToken("\t", special=False, normalized=True, lstrip=True, rstrip=True, single_word=True)],
}
strip_texts = st.lists(
    st.sampled_from(["\n", "\n\n", " ", "  ", "\t", "\u3000", "Hello", "x", "z", "日"]), max_size=24
).map("".join)


def byte_vocab_pair(folder, name, tokens, normalizer=None):
    """(tokenizers, fastllm) for the 256 single bytes plus the added ``tokens`` (special ones
    first, as tokenizers numbers them), under ``normalizer`` and a plain ByteLevel."""
    vocab = {bytes_to_text(bytes([b])): b for b in range(256)}
    special = [t for t in tokens if t.special]
    plain = [t for t in tokens if not t.special]
    path, hf = hf_file(folder, name, vocab, [], normalizer, byte_level(), special=special, added=plain)
    return hf, Tokenizer.from_hf_json(path)


@pytest.fixture(scope="module")
def strip_tokenizers(tmp_path_factory):
    """name -> (tokenizers, fastllm) for each STRIP_TOKENS set over a byte vocabulary."""
    folder = tmp_path_factory.mktemp("strip")
    return {name: byte_vocab_pair(folder, name, tokens, normalizers.NFC()) for name, tokens in STRIP_TOKENS.items()}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("both", "\n" * 14 + "z", [256, 122]),  # one token swallows the newlines the later matches start in
        ("right", "\n" * 6 + "z", [256, 256, 256, 122]),  # without lstrip each match keeps its start
        ("left", " " * 5 + "x", [256, 256, 32, 120]),
        ("space_after_word", "aa Hello Hello", [97, 97, 256, 257, 257]),
    ],
)
def test_strip_flags_examples(name, text, expected, strip_tokenizers):
    hf, ours = strip_tokenizers[name]
    assert ours.encode(text, allowed_special="all") == expected == hf_ids(hf, text)


@pytest.mark.parametrize("name", list(STRIP_TOKENS))
@given(text=strip_texts)
@settings(max_examples=80, deadline=None)
def test_strip_flags_encode_like_tokenizers(name, text, strip_tokenizers):
    hf, ours = strip_tokenizers[name]
    try:
        expected = hf_ids(hf, text)
    except BaseException as exc:  # tokenizers panics where a match ends inside what an earlier one swallowed
        assert "bad split" in str(exc)
        return
    assert ours.encode(text, allowed_special="all") == expected


def test_a_match_inside_swallowed_whitespace_gives_no_token(tmp_path):
    """"x" swallows the spaces after it, in which the lstrip token " " then matches: tokenizers
    panics ("AddedVocabulary bad split"); fastllm drops that match, as tokenizers drops one the
    strips leave empty."""
    tokens = [
        AddedToken("x", special=False, normalized=False, rstrip=True),
        AddedToken(" ", special=False, normalized=False, lstrip=True),
    ]
    _, ours = byte_vocab_pair(tmp_path, "inside", tokens)
    assert ours.encode("x   y") == [120, 121]  # "x" is the vocabulary's own token: its id is 120
    assert ours.encode("y x ") == [121, 256, 120]


#: A special token whose text holds an added token of the same pass (raw or normalized).
OVERLAPPING = [
    AddedToken("<ab>", special=True, normalized=False),
    AddedToken("b>", special=False, normalized=False),
    AddedToken(" Hello", special=True, normalized=False, rstrip=True),
    AddedToken("Hello", special=False, normalized=False),
    AddedToken("ab", special=False, normalized=True),
    AddedToken(" ", special=False, normalized=True, lstrip=True),
]
overlapping_texts = st.lists(st.sampled_from(["<ab>", "b>", " Hello", "Hello", "ab", " ", "<", "x", "\n"]), max_size=16).map(
    "".join
)


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    return byte_vocab_pair(tmp_path_factory.mktemp("overlapping"), "overlapping", OVERLAPPING)


def test_a_special_not_allowed_hides_the_added_tokens_inside_it(overlapping):
    """tokenizers' encode_special_tokens finds "<ab>" and skips it: "b>" inside stays text
    (the normalized pass's "ab" is still found, in what the raw pass left)."""
    hf, ours = overlapping
    lt, gt, x, y = 60, 62, 120, 121
    ab_special, b_gt, ab = 256, 258, 260
    assert ours.encode_ordinary("x<ab>y") == [x, lt, ab, gt, y]
    assert ours.encode("x<ab>y", allowed_special="all") == [x, ab_special, y]
    assert ours.encode("x<ab>y", disallowed_special=()) == [x, lt, ab, gt, y]
    assert ours.encode_ordinary("xb>") == [x, b_gt]


@given(text=overlapping_texts)
@settings(max_examples=120, deadline=None)
def test_overlapping_added_tokens_encode_like_tokenizers(text, overlapping):
    hf, ours = overlapping
    assert ours.encode(text, allowed_special="all") == hf_ids(hf, text)
    hf.encode_special_tokens = True
    try:
        assert ours.encode_ordinary(text) == hf_ids(hf, text)
    finally:
        hf.encode_special_tokens = False


# ----- post-processors -------------------------------------------------------------------

POST = {
    "template_bos": processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 50257)]
    ),
    "template_bos_eos": processors.TemplateProcessing(
        single="<|begin_of_text|> $A <|endoftext|>",
        pair="<|begin_of_text|> $A <|endoftext|> $B:1 <|endoftext|>:1",
        special_tokens=[("<|begin_of_text|>", 50257), ("<|endoftext|>", 50256)],
    ),
    "roberta": processors.RobertaProcessing(("<|endoftext|>", 50256), ("<|begin_of_text|>", 50257)),
    "sequence": processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 50257)]),
        ]
    ),
    "byte_level": processors.ByteLevel(trim_offsets=False),
}


@pytest.mark.parametrize("name", list(POST))
def test_post_processor_bos_eos(name, tmp_path, gpt2_model):
    special = [AddedToken("<|endoftext|>", special=True), AddedToken("<|begin_of_text|>", special=True)]
    path, hf = hf_file(
        tmp_path, name, *gpt2_model, None, pt.Sequence([split(LLAMA3), byte_level()]), post=POST[name], special=special
    )
    ours = Tokenizer.from_hf_json(path)
    for text in ("Hello world", "", "a<|endoftext|>b"):
        assert ours.encode(text, allowed_special="all", add_special_tokens=True) == hf_ids(hf, text, True), text
        assert ours.encode(text, allowed_special="all") == hf_ids(hf, text, False), text
        batch = ours.encode_batch([text, text], allowed_special="all", add_special_tokens=True)
        assert batch == [hf_ids(hf, text, True)] * 2
        array = ours.encode_to_numpy(text, allowed_special="all", add_special_tokens=True)
        assert array.tolist() == hf_ids(hf, text, True) and not array.flags.writeable
        flat = ours.encode_batch_to_numpy([text, "x", text], allowed_special="all", add_special_tokens=True)
        assert [part.tolist() for part in flat.split()] == [hf_ids(hf, t, True) for t in (text, "x", text)]


def test_add_special_tokens_changes_nothing_without_a_template(fastllm_encoding):
    tok = fastllm_encoding("cl100k_base")
    assert tok.encode("hi there", add_special_tokens=True) == tok.encode("hi there")
    assert tok.encode_batch(["a b"], add_special_tokens=True) == [tok.encode("a b")]
    flat = tok.encode_batch_to_numpy(["a b"], add_special_tokens=True)
    assert [part.tolist() for part in flat.split()] == [tok.encode("a b")]


# ----- fastllm's writer, read by tokenizers and transformers -----------------------------

WRITTEN = ["gpt2_prefix_space", "qwen2", "deepseek_v3", "digits_starcoder", "oniguruma_dialect", "merged_with_next_inverted"]


@pytest.fixture(scope="module")
def written(tmp_path_factory, shapes, with_added):
    """name -> (fastllm Tokenizer, tokenizers reading its to_hf_json file, PreTrainedTokenizerFast on it)."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("written")
    cache = {}

    def get(name):
        if name not in cache:
            ours = with_added[2] if name == "added" else shapes(name)[2]
            ours = ours if name == "added" else ours.with_special_tokens({"<|endoftext|>": 50256})
            path = folder / f"{name}.json"
            ours.to_hf_json(path)
            fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
            cache[name] = (ours, tokenizers.Tokenizer.from_file(str(path)), fast, path)
        return cache[name]

    return get


@pytest.mark.parametrize("name", WRITTEN + ["added"])
@given(text=st.one_of(texts, added_texts))
@settings(max_examples=40, deadline=None)
def test_written_file_encodes_alike_in_tokenizers_and_transformers(name, text, written):
    ours, hf, fast, _ = written(name)
    ids = ours.encode(text, allowed_special="all")
    assert hf_ids(hf, text) == ids
    assert fast.encode(text, add_special_tokens=False) == ids
    if CAFE not in ids or name != "added":
        assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)


@pytest.mark.parametrize("name", WRITTEN)
def test_written_file_encodes_the_corpora_alike(name, written, corpora):
    ours, hf, fast, _ = written(name)
    text = corpora["multilingual.txt"][:100_000]
    assert hf_ids(hf, text) == ours.encode_ordinary(text)
    assert fast.encode(text, add_special_tokens=False) == ours.encode_ordinary(text)


def test_written_bos_eos_reach_transformers(tmp_path, gpt2_model):
    base = Tokenizer.from_hf_json(
        hf_file(tmp_path, "base", *gpt2_model, None, pt.Sequence([split(LLAMA3), byte_level()]))[0]
    )
    ours = Tokenizer(
        base.mergeable_tokens(),
        {"<s>": 50257, "</s>": 50258},
        base.pattern,
        pipeline=Pipeline(bos_ids=(50257,), eos_ids=(50258,)),
    )
    ours.to_hf_json(tmp_path / "bos.json")
    PreTrainedTokenizerFast = pytest.importorskip("transformers").PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "bos.json"))
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "bos.json"))
    text = "Hello <s> world"
    expected = ours.encode(text, allowed_special="all", add_special_tokens=True)
    assert expected[0] == 50257 and expected[-1] == 50258
    assert fast.encode(text) == hf_ids(hf, text, True) == expected
    assert Tokenizer.from_hf_json(tmp_path / "bos.json").pipeline.bos_ids == (50257,)


def test_written_file_reads_back(written):
    for name in WRITTEN + ["added"]:
        ours, _, _, path = written(name)
        back = Tokenizer.from_hf_json(path)
        text = "Hello <mask>  wörld 12345 <tool_call> café! ab\n\n x"
        assert back.encode(text, allowed_special="all") == ours.encode(text, allowed_special="all"), name
        assert back.special_tokens == ours.special_tokens


def test_save_load_and_pickle_keep_the_pipeline(with_added, tmp_path):
    ours = with_added[2]
    text = "<mask> café! ab <tool_call>\n\n"
    ours.save(tmp_path / "tok.fastllm.json")
    assert json.loads((tmp_path / "tok.fastllm.json").read_text())["version"] == 2
    for again in (Tokenizer.load(tmp_path / "tok.fastllm.json"), pickle.loads(pickle.dumps(ours))):
        assert again.pipeline == ours.pipeline
        assert again.encode(text, allowed_special="all") == ours.encode(text, allowed_special="all")
    more = ours.with_special_tokens(["<extra>"])
    assert more.pipeline == ours.pipeline and more.encode("<extra>", allowed_special="all") == [50264]


def test_cli_encodes_pipeline_tokenizers_whole(shapes, corpora, tmp_path, capsys):
    """The CLI cuts long input into chunks only for plain built-in patterns: a prefix
    space per chunk would add tokens."""
    from fastllm.cli.main import main

    path, hf, _ = shapes("gpt2_prefix_space")
    text = corpora["tinyshakespeare.txt"][:200_000]
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    assert main(["tokenizer", "encode", "--tokenizer", str(path), "--file", str(tmp_path / "in.txt")]) == 0
    out = capsys.readouterr().out
    assert [int(i) for i in out.split()] == hf_ids(hf, text)


# ----- the regex dialects ------------------------------------------------------------------

DIALECT_PATTERNS = [
    r"^\s+|\S+$", r"\w+|\W", r"\b\w+\b|\B.", r"\d{1,2}+|\D", r"(?m:.+)", r"(?i:straße|[a-z]+)|.", r"[\w\-]+|\s+|.",
    r"\p{^L}+|\p{L}+", r"\h+|\H", r"a{,2}|[^a]", r"\Z|.",
]


@pytest.mark.parametrize("pattern", DIALECT_PATTERNS)
@given(text=texts)
@settings(max_examples=30, deadline=None)
def test_oniguruma_patterns_split_like_tokenizers(pattern, text):
    reference = [p for p, _ in pt.Split(Regex(pattern), "isolated").pre_tokenize_str(text)]
    assert _isolated(from_oniguruma(pattern)).split(text) == reference


def _isolated(pattern: str) -> Tokenizer:
    """A byte tokenizer that splits with HF's ``Split(pattern, Isolated)`` (unmatched text kept)."""
    pipeline = Pipeline(steps=(Split(pattern), ByteLevel()))
    return Tokenizer([bytes([b]) for b in range(256)], {}, pattern, pipeline=pipeline)


def _every_code_point(separator: str) -> str:
    chars = [chr(c) for c in range(0x20, 0x30000) if not 0xD800 <= c < 0xE000 and chr(c) not in "\n" + separator]
    return separator + separator.join(chars) + separator + " ".join(chars[::7])


@pytest.mark.parametrize(
    "separator, patterns",
    [
        ("~", [r"\w", r"[\w]", r"\W", r"[\W]", r"[^\w]", r"\b.", r"\B.", r"[^\W\d]+|.", r"\d", r"\s"]),
        ("a", [r"\W", r"\b.", r"\B."]),  # the characters next to word characters
    ],
)
def test_word_classes_agree_on_every_code_point(separator, patterns):
    """The two dialects' word characters differ (and Oniguruma's differ inside and outside
    a bracket class): the rewritten classes must match the same characters."""
    text = _every_code_point(separator)
    for pattern in patterns:
        reference = [p for p, _ in pt.Split(Regex(pattern), "isolated").pre_tokenize_str(text)]
        assert _isolated(from_oniguruma(pattern)).split(text) == reference, pattern
    for pattern in [r"\w", r"\W", r"\b.", r"\B.", r"[^\w\s]+|."]:
        reference = [p for p, _ in pt.Split(Regex(to_oniguruma(pattern)), "isolated").pre_tokenize_str(text)]
        assert _isolated(pattern).split(text) == reference, pattern


@pytest.mark.parametrize("pattern", [r"\w+|\W", r"^\s+|\S+$|\s", r"\b\w|\w+|\W", r"(?s:.)\d{1,2}+|.", r"\s+\Z|\S+|\s"])
@given(text=texts)
@settings(max_examples=30, deadline=None)
def test_fastllm_patterns_split_alike_in_oniguruma(pattern, text):
    ours = _isolated(pattern)
    reference = [p for p, _ in pt.Split(Regex(to_oniguruma(pattern)), "isolated").pre_tokenize_str(text)]
    assert ours.split(text) == reference


# ----- refusals ----------------------------------------------------------------------------


def _small(tmp_path, **parts):
    """A valid small tokenizer.json, as a dict, with ``parts`` replaced."""
    tokens = [bytes([b]) for b in range(256)] + [b"ab", b"abc"]
    Tokenizer(tokens, {"<s>": 258}, "gpt2").to_hf_json(tmp_path / "ok.json")
    document = json.loads((tmp_path / "ok.json").read_text(encoding="utf-8"))
    document.update(parts)
    return document


def _refused(tmp_path, document, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        Tokenizer.from_hf_json(path)
    assert str(path) in str(info.value)


def _save(tmp_path, hf) -> dict:
    hf.save(str(tmp_path / "hf.json"))
    return json.loads((tmp_path / "hf.json").read_text(encoding="utf-8"))


def test_refuses_other_models(tmp_path):
    wordpiece = tokenizers.Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    _refused(tmp_path, _save(tmp_path, wordpiece), "model type 'WordPiece' is not supported")
    unigram = tokenizers.Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0)], 0))
    _refused(tmp_path, _save(tmp_path, unigram), "model type 'Unigram' is not supported")


def test_refuses_sentencepiece_style_bpe(tmp_path):
    # Llama 2's layout: byte_fallback BPE over "▁" text, Metaspace-like normalizer and decoders.
    vocab = {"<unk>": 0, **{f"<0x{b:02X}>": b + 1 for b in range(256)}, "▁": 257, "a": 258, "▁a": 259}
    hf = tokenizers.Tokenizer(models.BPE(vocab, [("▁", "a")], byte_fallback=True, unk_token="<unk>"))
    hf.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    hf.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    _refused(tmp_path, _save(tmp_path, hf), "byte_fallback")
    document = _save(tmp_path, hf)
    document["model"]["byte_fallback"] = False
    _refused(tmp_path, document, "normalizer 'Prepend' is not supported")


@pytest.mark.parametrize(
    "parts, message",
    [
        ({"pre_tokenizer": {"type": "Whitespace"}}, "pre-tokenizer 'Whitespace' is not supported"),
        ({"pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}}, "pre-tokenizer 'Metaspace' is not supported"),
        ({"pre_tokenizer": None}, "pre-tokenizer None is not supported"),
        (
            {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False, "trim_offsets": True},
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False, "trim_offsets": True}]}},
            "ByteLevel must be the last",
        ),
        ({"normalizer": {"type": "Lowercase"}}, "normalizer 'Lowercase' is not supported"),
        ({"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "NFKD"}]}}, "'NFKD' is not supported"),
        ({"decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True}}, "decoder 'WordPiece' is not supported"),
        ({"decoder": None}, "decoder None is not supported"),
        ({"post_processor": {"type": "Unknown"}}, "post-processor 'Unknown' is not supported"),
    ],
)
def test_refuses_unsupported_parts(tmp_path, parts, message):
    _refused(tmp_path, _small(tmp_path, **parts), message)


def test_refuses_regexes_without_an_equivalent(tmp_path):
    document = _small(tmp_path)
    document["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": "[[:alpha:]]+|."}
    _refused(tmp_path, document, "POSIX bracket")
    document["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": r"a\Kb"}
    _refused(tmp_path, document, r"escape '\\\\K' is not supported")
    document["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": "[z-a]"}
    _refused(tmp_path, document, "invalid split pattern")


def test_refuses_model_options(tmp_path):
    for key, value, message in [
        ("dropout", 0.1, "dropout"),
        ("byte_fallback", True, "byte_fallback"),
        ("continuing_subword_prefix", "##", "continuing_subword_prefix"),
    ]:
        document = _small(tmp_path)
        document["model"][key] = value
        _refused(tmp_path, document, message)


def test_refuses_ids_tokenizers_would_change(tmp_path):
    document = _small(tmp_path)
    document["added_tokens"].append(
        {"id": 300, "content": "<x>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    )
    _refused(tmp_path, document, "'<x>' has id 300, but tokenizers gives it id 259")


def _loads_like_tokenizers(tmp_path, document, texts):
    """``document`` loads (merging by its list: see test_listed_merges.py) and encodes
    ``texts`` as tokenizers does."""
    path = tmp_path / "listed.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    tok, hf = Tokenizer.from_hf_json(path), tokenizers.Tokenizer.from_file(str(path))
    assert tok.merges() is not None
    for text in texts:
        assert tok.encode_ordinary(text) == hf_ids(hf, text), text


def test_several_merges_per_token_merge_by_the_list(tmp_path):
    # Llama 3's tokenizer.json (converted from tiktoken ranks) lists every split of a token.
    document = _small(tmp_path, added_tokens=[])
    del document["model"]["vocab"]["<s>"]
    document["model"]["vocab"]["bc"] = 258
    document["model"]["merges"].append(["a", "bc"])
    _loads_like_tokenizers(tmp_path, document, ["abc", "xabcx", "abcabc bc"])


def test_unmerged_tokens_without_ignore_merges_merge_by_the_list(tmp_path):
    # tokenizers never emits "abc" here (no merge builds it); rank-based BPE would, for the piece "abc".
    document = _small(tmp_path)
    document["model"]["ignore_merges"] = False
    document["model"]["merges"] = document["model"]["merges"][:1]
    _loads_like_tokenizers(tmp_path, document, ["abc", "abcabc", "ab c"])


def test_pipeline_description_errors():
    with pytest.raises(ValueError, match="unknown split behavior"):
        Pipeline(steps=(Split("a", behavior="sideways"),))
    with pytest.raises(ValueError, match="unknown normalizer"):
        Pipeline(normalizer="nfkc")
    tokens = [bytes([b]) for b in range(256)]
    with pytest.raises(ValueError, match="ByteLevel must be the last"):
        Tokenizer(tokens, pipeline=Pipeline(steps=(ByteLevel(), Split("a"))))
    with pytest.raises(ValueError, match="is special but is not a special token"):
        Tokenizer(tokens, {}, pipeline=Pipeline(added_tokens=(FastAddedToken("<s>", 256, special=True),)))
    with pytest.raises(ValueError, match="a special token's name"):
        Tokenizer(tokens, {"<s>": 256}, pipeline=Pipeline(added_tokens=(FastAddedToken("<s>", 256),)))
    with pytest.raises(ValueError, match="BOS/EOS ids \\[999\\]"):
        Tokenizer(tokens, pipeline=Pipeline(bos_ids=(999,)))
    with pytest.raises(ValueError, match="malformed pipeline"):
        Pipeline.from_dict({"steps": [{"type": "nope"}]})
