"""tokenizer.json files whose merges cannot be read as ranks, merged by their list as
``tokenizers`` does (``rust/src/bpe/listed_merges.rs``), checked against ``tokenizers``.

The real case is a file converted from tiktoken ranks (Llama 3's, Llama 4's, GPT-OSS's,
Mistral Tekken's on the HF hub): transformers' ``TikTokenConverter`` lists every split of
a token into two tokens as a merge, ordered by the token's rank, then by the parts' ranks.
These tests build such files from the shared ``.tiktoken`` vocabularies (nothing is
downloaded), and small ones where the listed order and rank-based BPE give other ids.
"""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer
from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text
from tests.support.merge_lists import converter_merges
from tests.support.text_strategies import FRAGMENTS, text_strategy

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Regex, decoders, models  # noqa: E402
from tokenizers import pre_tokenizers as pt  # noqa: E402

# Llama 3's split regex, as its tokenizer.json spells it (Oniguruma).
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def hf_file(path, tokens, merges, pre, *, ignore_merges=True, ids=None):
    """A tokenizer.json built by ``tokenizers`` (vocab ``tokens`` at ``ids``, else their
    ranks), saved at ``path``; returns ``tokenizers`` reading it back."""
    ids = ids or range(len(tokens))
    vocab = {bytes_to_text(token): token_id for token, token_id in zip(tokens, ids)}
    hf = tokenizers.Tokenizer(
        models.BPE(vocab, [(bytes_to_text(a), bytes_to_text(b)) for a, b in merges], ignore_merges=ignore_merges)
    )
    hf.pre_tokenizer = pre
    hf.decoder = decoders.ByteLevel()
    hf.save(str(path))
    return tokenizers.Tokenizer.from_file(str(path))


def llama3_pre():
    return pt.Sequence([pt.Split(Regex(LLAMA3), "isolated"), pt.ByteLevel(add_prefix_space=False, use_regex=False)])


@pytest.fixture(scope="module")
def converted(tmp_path_factory, shared_data):
    """name -> (path, tokenizers' reading, fastllm's) for cl100k's and o200k's ranks
    converted as transformers converts tiktoken files, with Llama 3's split."""
    folder = tmp_path_factory.mktemp("converted")
    cache = {}

    def get(name):
        if name not in cache:
            tokens = Tokenizer.from_tiktoken(shared_data / f"{name}.tiktoken", pattern="gpt2").mergeable_tokens()
            path = folder / f"{name}.json"
            hf = hf_file(path, tokens, converter_merges(tokens), llama3_pre())
            cache[name] = (path, hf, Tokenizer.from_hf_json(path))
        return cache[name]

    return get


def hf_ids(hf, text):
    return hf.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_converted_files_load_with_their_merge_list(name, converted):
    path, _, tok = converted(name)
    merges = tok.merges()
    assert merges is not None and tok.ignore_merges
    document = json.loads(path.read_text(encoding="utf-8"))
    assert len(merges) == len(document["model"]["merges"]) > tok.n_vocab  # several per token
    mergeable = set(tok.mergeable_tokens())
    assert all(left + right in mergeable for left, right in merges[:: len(merges) // 1000])


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_converted_files_encode_the_corpora_like_tokenizers(name, converted, corpora):
    _, hf, tok = converted(name)
    for corpus, text in corpora.items():
        lines = text.splitlines(keepends=True)[::7]
        assert tok.encode_ordinary_batch(lines) == [hf_ids(hf, line) for line in lines], corpus
        whole = "".join(lines[:400])
        assert tok.encode_ordinary(whole) == hf_ids(hf, whole), corpus
        assert tok.decode(tok.encode_ordinary(whole)) == whole


texts = st.one_of(text_strategy, st.lists(st.sampled_from(FRAGMENTS + ["aaaa", "abab", "1234567", "日本語の"]), max_size=20).map("".join))


@settings(max_examples=150, deadline=None)
@given(text=texts)
def test_converted_file_encodes_generated_text_like_tokenizers(text, converted):
    _, hf, tok = converted("cl100k_base")
    assert tok.encode_ordinary(text) == hf_ids(hf, text)
    assert tok.encode_ordinary_to_numpy(text).tolist() == hf_ids(hf, text)


def test_the_real_converter_gives_what_these_tests_build(converted, shared_data, tmp_path):
    """transformers' TikTokenConverter itself, on the shared cl100k file: the merges above."""
    convert = pytest.importorskip("transformers.convert_slow_tokenizer")
    try:
        hf = convert.TikTokenConverter(vocab_file=str(shared_data / "cl100k_base.tiktoken"), pattern=LLAMA3).converted()
    except Exception as exc:  # its tiktoken import, offline
        pytest.skip(f"transformers' TikTokenConverter did not run here: {exc}")
    hf.save(str(tmp_path / "real.json"))
    real = Tokenizer.from_hf_json(tmp_path / "real.json")
    assert real.merges() == converted("cl100k_base")[2].merges()
    text = "Converted from tiktoken ranks: Llama 3's tokenizer.json, 2024.\n"
    assert real.encode_ordinary(text) == hf.encode(text, add_special_tokens=False).ids


# ----- small files where the listed order and rank-based BPE part ----------------------


BYTES = [bytes([b]) for b in range(256)]
#: A vocabulary with several merges per token, as a converter would list them, and the
#: witness texts where rank-based BPE over the same ranks gives other ids.
SMALL_EXTRA = [b"ab", b"ba", b"aba", b"bab", b"abab", b"aa", b"bb", b"abba", b"baab"]
#: Tokens of two Chinese characters and their byte pairs (see "cut_parts" below).
CJK_EXTRA = [b"\xe6\x97", b"\x97\xa5", "日".encode(), b"\xe6\x9c", "本".encode(), "本日".encode()]


def small_cases():
    tokens = BYTES + SMALL_EXTRA
    converter = converter_merges(tokens)
    # The same merges, each token's splits listed right part first: another order tokenizers follows.
    reordered = sorted(converter, key=lambda pair: (tokens.index(pair[0] + pair[1]), -len(pair[0])))
    return {
        "converter": (tokens, converter),
        "reordered": (tokens, reordered),
        # "abc" listed as ab + c only, and bc merged before ab: tokenizers never joins a + bc.
        "unlisted_split": (BYTES + [b"bc", b"ab", b"abc"], [(b"b", b"c"), (b"a", b"b"), (b"ab", b"c")]),
        # A merge whose part only a later merge builds.
        "part_built_later": (BYTES + [b"ab", b"abc", b"bc"], [(b"a", b"b"), (b"a", b"bc"), (b"b", b"c")]),
        # Chinese characters, where the encoder cuts pieces before a character no token spans
        # and merges the parts apart: 日 and 本日 are tokens the list never makes from their
        # bytes (97 a5 joins first, and nothing joins e6 to it), 本 one it makes.
        "cut_parts": (BYTES + CJK_EXTRA, [(b"\x97", b"\xa5"), (b"\xe6", b"\x97"), (b"\xe6\x97", b"\xa5"),
                                         (b"\xe6", b"\x9c"), (b"\xe6\x9c", b"\xac"),
                                         ("本".encode(), "日".encode())]),
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    built = {}
    for name, (tokens, merges) in small_cases().items():
        for ignore in (True, False):
            hf = hf_file(folder / f"{name}-{ignore}.json", tokens, merges, pt.ByteLevel(add_prefix_space=False), ignore_merges=ignore)
            built[name, ignore] = (hf, Tokenizer.from_hf_json(folder / f"{name}-{ignore}.json"), tokens)
    return built


small_texts = st.text(alphabet="abc x", max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=small_texts)
def test_small_files_encode_like_tokenizers(text, small):
    for (name, ignore), (hf, tok, _) in small.items():
        assert tok.merges() is not None, name
        assert tok.encode_ordinary(text) == hf_ids(hf, text), (name, ignore)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="日本ab x", max_size=40))
def test_small_files_encode_chinese_like_tokenizers(text, small):
    """Pieces cut before characters no token spans, parts merged by the list."""
    for (name, ignore), (hf, tok, _) in small.items():
        assert tok.encode_ordinary(text) == hf_ids(hf, text), (name, ignore)


def test_a_cut_part_that_is_a_token_is_merged_by_the_list():
    """The piece 本日本 is cut before its last character (no token spans that place); the
    part 本日 is a token, but the list never makes it from its bytes, and ignore_merges
    looks up whole pieces only: its bytes merge as the list says (a check that can fail:
    taking the part for its token gives [本日, 本])."""
    tokens = BYTES + CJK_EXTRA
    _, merges = small_cases()["cut_parts"]
    tok = Tokenizer(tokens, merges=merges, pattern="gpt2")
    hf = tokenizers.Tokenizer(models.BPE({bytes_to_text(t): r for r, t in enumerate(tokens)},
                                         [(bytes_to_text(a), bytes_to_text(b)) for a, b in merges], ignore_merges=True))
    hf.pre_tokenizer = pt.ByteLevel(add_prefix_space=False)
    rank = {t: r for r, t in enumerate(tokens)}
    expected = [rank["本".encode()], 0xE6, rank[b"\x97\xa5"], rank["本".encode()]]
    for _ in range(2):  # the second time from what the first learnt and remembered
        assert tok.encode_ordinary("本日本") == hf_ids(hf, "本日本") == expected
        assert tok.encode_ordinary_batch(["本日本 本日", "日"]) == [hf_ids(hf, "本日本 本日"), [rank["日".encode()]]]
    assert tok.encode_ordinary("本日") == [rank["本日".encode()]]  # a whole piece that is a token


def test_small_files_part_from_rank_based_bpe(small):
    """Each small file has a text where rank-based BPE over the same token order gives
    other ids than tokenizers: the list is what makes these pass (a check that can fail)."""
    # (The converter's orders give none on this vocabulary: none turned up in every text of
    # up to ten letters a, b, c; the unit tests in listed_merges.rs hold a tie they break.)
    for name, witness in {"unlisted_split": "aabc", "part_built_later": "abcd"}.items():
        hf, tok, tokens = small[name, True]
        by_rank = Tokenizer(tokens, pattern="gpt2")
        assert tok.encode_ordinary(witness) == hf_ids(hf, witness) != by_rank.encode_ordinary(witness), name


def test_long_pieces_merge_like_tokenizers(small):
    """Pieces past the scan's length merge from a heap: the same ids."""
    import random

    rng = random.Random(5)
    for name in ("converter", "reordered"):
        for ignore in (True, False):
            hf, tok, _ = small[name, ignore]
            for length in (33, 200, 5000):
                text = "".join(rng.choice("ab") for _ in range(length))
                assert tok.encode_ordinary(text) == hf_ids(hf, text), (name, ignore, length)


def test_ignore_merges_false_never_looks_up_whole_pieces(small):
    # "abc" is a token no merge order reaches from a + bc: tokenizers without ignore_merges
    # gives two ids for the word, with it one.
    hf_off, off, _ = small["unlisted_split", False]
    hf_on, on, _ = small["unlisted_split", True]
    assert not off.ignore_merges and on.ignore_merges
    assert len(off.encode_ordinary("abc")) == len(hf_ids(hf_off, "abc")) == 2
    assert len(on.encode_ordinary("abc")) == len(hf_ids(hf_on, "abc")) == 1


# ----- the merge list travels with the tokenizer -----------------------------------------


def test_merge_list_survives_every_format(small, tmp_path):
    hf, tok, _ = small["reordered", False]
    text = "ababa abba baab aababbab " * 3
    expected = hf_ids(hf, text)
    tok.save(tmp_path / "t.fastllm.json")
    assert json.loads((tmp_path / "t.fastllm.json").read_text(encoding="utf-8"))["version"] == 4
    again = [
        Tokenizer.load(tmp_path / "t.fastllm.json"),
        pickle.loads(pickle.dumps(tok)),
        tok.with_special_tokens(["<|end|>"]),
    ]
    tok.to_hf_json(tmp_path / "out.json")
    again.append(Tokenizer.from_hf_json(tmp_path / "out.json"))
    hf_again = tokenizers.Tokenizer.from_file(str(tmp_path / "out.json"))
    assert hf_ids(hf_again, text) == expected
    for other in again:
        assert other.merges() == tok.merges() and other.ignore_merges is False
        assert other.encode_ordinary(text) == expected
    with pytest.raises(ValueError, match="merges by its merge list"):
        tok.save_tiktoken(tmp_path / "t.tiktoken")


def test_merges_txt_with_several_merges_per_token(tmp_path):
    """GPT-2's two-file form, read as tokenizers' BPE.from_file reads it (no ignore_merges)."""
    tokens = BYTES + SMALL_EXTRA
    merges = sorted(converter_merges(tokens), key=lambda pair: (tokens.index(pair[0] + pair[1]), -len(pair[0])))
    vocab = {bytes_to_text(token): rank for rank, token in enumerate(tokens)}
    vocab["<|endoftext|>"] = len(tokens)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{bytes_to_text(a)} {bytes_to_text(b)}" for a, b in merges]
    (tmp_path / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tok = Tokenizer.from_pretrained(tmp_path)
    hf = tokenizers.Tokenizer(models.BPE.from_file(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")))
    hf.pre_tokenizer = pt.ByteLevel(add_prefix_space=False)
    assert tok.merges() is not None and not tok.ignore_merges
    for text in ["ababa", "abba baab", "aaaa bbbb abab", "babab" * 7]:
        assert tok.encode_ordinary(text) == hf_ids(hf, text), text


def test_bad_merge_lists_are_refused():
    tokens = BYTES + [b"ab"]
    with pytest.raises(TypeError, match="merge 1 must be a \\(bytes, bytes\\) pair"):
        Tokenizer(tokens, merges=[("a", "b")])
    with pytest.raises(TypeError, match="merges must be a sequence"):
        Tokenizer(tokens, merges=b"ab")
    with pytest.raises(TypeError, match="ignore_merges must be True or False"):
        Tokenizer(tokens, merges=[(b"a", b"b")], ignore_merges=1)
    with pytest.raises(ValueError, match='merge 2 \\("ab", "zz"\\): "zz" is no mergeable token'):
        Tokenizer(tokens, merges=[(b"a", b"b"), (b"ab", b"zz")])
    with pytest.raises(ValueError, match="merge 1 .*builds .*which is no mergeable token"):
        Tokenizer(tokens, merges=[(b"b", b"a")])
    assert Tokenizer(tokens).merges() is None and Tokenizer(tokens).ignore_merges


def test_a_merge_list_naming_text_outside_the_vocabulary_is_refused(tmp_path):
    tokens = BYTES + SMALL_EXTRA
    hf_file(tmp_path / "ok.json", tokens, converter_merges(tokens), pt.ByteLevel(add_prefix_space=False))
    document = json.loads((tmp_path / "ok.json").read_text(encoding="utf-8"))
    document["model"]["merges"].append(["b", "c"])
    (tmp_path / "bad.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match="builds 'bc', which is not in the vocabulary") as info:
        Tokenizer.from_hf_json(tmp_path / "bad.json")
    assert str(tmp_path / "bad.json") in str(info.value)


def test_a_list_rank_based_bpe_follows_merges_by_rank():
    """The merges rank-based BPE joins, given as a list, give the same ids by rank: the
    tokenizer keeps no list (the fast path), with or without ignore_merges where a merge
    builds every token; a token no merge builds keeps the list without ignore_merges."""
    from fastllm.tokenizer.vocab import derive_merges

    tokens = BYTES + SMALL_EXTRA
    derived = derive_merges(tokens)
    assert Tokenizer(tokens, merges=derived).merges() is None
    assert Tokenizer(tokens, merges=derived, ignore_merges=False).merges() is None
    assert Tokenizer(tokens, merges=derived[:-1]).merges() == derived[:-1]
    unbuilt = BYTES + [b"ab", b"xyz"]  # "xyz": three bytes no merge, nor rank-based BPE, builds
    assert derive_merges(unbuilt) == [(b"a", b"b")]
    assert Tokenizer(unbuilt, merges=[(b"a", b"b")]).merges() is None
    kept = Tokenizer(unbuilt, merges=[(b"a", b"b")], ignore_merges=False)
    assert kept.merges() == [(b"a", b"b")] and kept.encode_ordinary("xyz") == [ord("x"), ord("y"), ord("z")]


def test_merges_txt_with_a_token_no_merge_builds(tmp_path):
    """tokenizers' BPE.from_file has no ignore_merges: "xyz", which no merge builds, is never
    one token there; fastllm reads such files by the list (the fast reader steps aside)."""
    tokens = BYTES + [b"ab", b"xyz"]
    (tmp_path / "vocab.json").write_text(json.dumps({bytes_to_text(t): r for r, t in enumerate(tokens)}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n", encoding="utf-8")
    tok = Tokenizer.from_pretrained(tmp_path)
    hf = tokenizers.Tokenizer(models.BPE.from_file(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")))
    hf.pre_tokenizer = pt.ByteLevel(add_prefix_space=False)
    assert tok.merges() == [(b"a", b"b")] and not tok.ignore_merges
    for text in ["xyz", "ab xyz abxyz"]:
        assert tok.encode_ordinary(text) == hf_ids(hf, text), text
