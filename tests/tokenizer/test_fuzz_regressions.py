"""What the fuzzers in fuzz/ found (fuzz/run_all.sh; benches/RESULTS.md, "Fuzzing"), one test each.

Each input is the fuzzer's crashing input cut down by hand to what triggers it.
"""

from __future__ import annotations

import base64
import json

import pytest

from fastllm import Tokenizer
from fastllm.tokenizer import open_tokenizer

BYTES = [bytes([b]) for b in range(256)]


@pytest.fixture
def byte_tokenizer():
    return Tokenizer(BYTES + [b"ab"], {"<|endoftext|>": 257, "<x>": 258, "x>": 259}, "cl100k")


# ----- py_tiktoken_file, py_fastllm_json, py_hf_json: a file that parses but cannot build a
# tokenizer raised the core's ValueError without naming the file.


def test_tiktoken_file_without_every_byte_names_the_file(tmp_path):
    path = tmp_path / "short.tiktoken"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for r, t in enumerate(BYTES[:200])))
    with pytest.raises(ValueError, match=r"short\.tiktoken: .*lack the single byte 0xc8"):
        Tokenizer.from_tiktoken(path, pattern="cl100k")
    with pytest.raises(ValueError, match=r"short\.tiktoken: .*lack the single byte"):
        open_tokenizer(path, pattern="gpt2")


def test_fastllm_file_with_a_special_among_the_ranks_names_the_file(tmp_path):
    path = tmp_path / "tok.json"
    Tokenizer(BYTES, {"<s>": 256}, "gpt2").save(path)
    document = json.loads(path.read_text())
    document["special_tokens"] = {"<s>": 7}
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"tok\.json: .*already the rank"):
        Tokenizer.load(path)


def test_tokenizer_json_with_a_bad_split_regex_names_the_file(tmp_path):
    Tokenizer(BYTES, {}, r"\w+|\s+|.").to_hf_json(tmp_path / "tokenizer.json")
    document = json.loads((tmp_path / "tokenizer.json").read_text())
    document["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"[\p{L"
    (tmp_path / "tokenizer.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"tokenizer\.json: invalid split pattern"):
        Tokenizer.from_hf_json(tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match=str(tmp_path)):
        Tokenizer.from_pretrained(tmp_path)


def test_gpt2_directory_without_every_byte_names_the_directory(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 0, "b": 1}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(ValueError, match=str(tmp_path)):
        Tokenizer.from_pretrained(tmp_path)


# ----- py_tokenizer_api: an id beyond 64 bits raised OverflowError, not the ValueError of
# any other unknown id.


@pytest.mark.parametrize("bad", [2**64, 2**70, -(2**64)])
def test_ids_beyond_64_bits_are_unknown_ids(byte_tokenizer, bad):
    kind = "unknown" if bad > 0 else "invalid"
    with pytest.raises(ValueError, match=rf"{kind} token id {bad} at position 1"):
        byte_tokenizer.decode_bytes([97, bad, 98])
    with pytest.raises(ValueError, match=rf"{kind} token id {bad}"):
        byte_tokenizer.decode([bad])
    with pytest.raises(ValueError, match=rf"{kind} token id {bad}"):
        byte_tokenizer.decode_single_token_bytes(bad)
    decoder = byte_tokenizer.incremental_decoder()
    with pytest.raises(ValueError, match=rf"{kind} token id {bad}"):
        decoder.add(bad)
    with pytest.raises(ValueError, match=rf"{kind} token id {bad} at position 2"):
        decoder.add_many([97, 98, bad])
    assert decoder.add_many([97, 98]) == "ab"  # nothing of the refused call went in


# ----- py_tokenizer_api: a special token id of 2**64 raised OverflowError.


@pytest.mark.parametrize("bad", [2**32 - 1, 2**40, 2**64, 2**80])
def test_special_ids_beyond_the_id_range_are_value_errors(byte_tokenizer, bad):
    with pytest.raises(ValueError, match=rf"'<a>' has id {bad}; ids must be below 4294967295"):
        Tokenizer(BYTES, {"<a>": bad})
    with pytest.raises(ValueError, match=rf"has id {bad}"):
        byte_tokenizer.with_special_tokens({"<a>": bad})
    assert Tokenizer(BYTES, {"<a>": 2**32 - 2}).n_vocab == 2**32 - 1


# ----- py_tokenizer_api against tiktoken: a special both allowed and explicitly disallowed was
# encoded as allowed; tiktoken (whose policy fastllm follows) raises where it occurs.


def test_a_special_both_allowed_and_disallowed_is_an_error_where_it_occurs(byte_tokenizer):
    text = "a<|endoftext|>b"
    for allowed in ({"<|endoftext|>"}, "all"):
        with pytest.raises(ValueError, match="disallowed special token"):
            byte_tokenizer.encode(text, allowed_special=allowed, disallowed_special={"<|endoftext|>"})
        assert byte_tokenizer.encode("ab", allowed_special=allowed, disallowed_special={"<|endoftext|>"}) == [256]
    # "all" (the default) still means every special that is not allowed.
    assert byte_tokenizer.encode(text, allowed_special={"<|endoftext|>"}) == [97, 257, 98]
    assert byte_tokenizer.encode(text, allowed_special="all", disallowed_special="all") == [97, 257, 98]
    # A disallowed special inside an allowed one is still found (as in tiktoken).
    with pytest.raises(ValueError, match="'x>'|\"x>\""):
        byte_tokenizer.encode("<x>", allowed_special={"<x>"}, disallowed_special={"x>"})


def test_special_policy_matches_tiktoken(byte_tokenizer):
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {t: i for i, t in enumerate(byte_tokenizer.mergeable_tokens())}
    ref = tiktoken.Encoding("t", pat_str=byte_tokenizer.pattern_regex, mergeable_ranks=ranks,
                            special_tokens=byte_tokenizer.special_tokens)
    names = sorted(byte_tokenizer.special_tokens_set)
    for text in ["x>'s <|endoftext|>", "<x>", "ab<x>x>", "plain"]:
        for allowed in [set(), {"<x>"}, {"x>", "<|endoftext|>"}, "all"]:
            for disallowed in ["all", set(), {"x>"}, set(names)]:
                outcomes = []
                for enc in (byte_tokenizer, ref):
                    try:
                        outcomes.append(enc.encode(text, allowed_special=allowed, disallowed_special=disallowed))
                    except ValueError:
                        outcomes.append("ValueError")
                assert outcomes[0] == outcomes[1], (text, allowed, disallowed)


# ----- A custom split regex that gave up on a text (fancy-regex's backtrack limit) ended the
# pieces there: encode returned [] for 41 characters, and training counted nothing of
# the text. tiktoken raises; now every call does.

GIVES_UP = r"(?:a|aa)+(?=b)|[\s\S]"


def test_a_split_regex_that_gives_up_is_an_error_not_a_shorter_result(tmp_path):
    tok = Tokenizer(BYTES, {"<s>": 256}, GIVES_UP)
    text = "a" * 40 + "c"
    calls = [
        lambda: tok.encode(text),
        lambda: tok.encode(text, allowed_special="all"),
        lambda: tok.encode_ordinary(text),
        lambda: tok.encode_batch(["ab", text]),
        lambda: tok.encode_ordinary_batch([text]),
        lambda: tok.encode_to_numpy(text),
        lambda: tok.split(text),
        lambda: Tokenizer.train(iter([text]), vocab_size=300, pattern=GIVES_UP),
    ]
    (tmp_path / "corpus.txt").write_text(text + "\n")
    calls.append(lambda: Tokenizer.train(tmp_path / "corpus.txt", vocab_size=300, pattern=GIVES_UP))
    for call in calls:
        with pytest.raises(ValueError, match=r"regex engine gave up on split pattern .* at (character \d+ \()?byte \d+"):
            call()
    assert tok.encode("aab") == [97, 97, 98]
    tiktoken = pytest.importorskip("tiktoken")
    ref = tiktoken.Encoding("t", pat_str=GIVES_UP, mergeable_ranks={t: i for i, t in enumerate(BYTES)}, special_tokens={})
    with pytest.raises(ValueError):
        ref.encode(text)


# ----- JSON files whose structure Python's json module refuses in its own ways: nesting
# deeper than the recursion limit (RecursionError) and an int of more than 4300 digits
# (a ValueError that named no file); a Sequence whose "pretokenizers" is not a list
# (TypeError: 'int' object is not iterable).


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000 + "]" * 100_000, '{"format": "fastllm-tokenizer", "ranks": [' + "1" * 5000 + "]}"],
    ids=["deep", "long-int"],
)
def test_json_the_parser_refuses_is_a_value_error_naming_the_file(tmp_path, content):
    for name, load in [("tok.json", Tokenizer.load), ("tokenizer.json", Tokenizer.from_hf_json)]:
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(ValueError, match=rf"{name}: "):
            load(path)
    (tmp_path / "vocab.json").write_text(content)
    (tmp_path / "merges.txt").write_text("")
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match=r"vocab\.json: not a valid JSON vocabulary"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({bytes_text: i for i, bytes_text in enumerate("ab")}))
    (tmp_path / "added_tokens.json").write_text(content)
    with pytest.raises(ValueError, match=r"added_tokens\.json: not valid JSON"):
        Tokenizer.from_pretrained(tmp_path)


def test_tokenizer_json_whose_pretokenizers_is_not_a_list_names_the_file(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"model": {"vocab": {"a": 0}}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": 5}}))
    with pytest.raises(ValueError, match=r"tokenizer\.json: pre-tokenizer 'Sequence' is not supported"):
        Tokenizer.from_hf_json(path)


@pytest.mark.parametrize("field", ["merges", "added_tokens"])
def test_tokenizer_json_whose_lists_are_scalars_names_the_file(tmp_path, field):
    document = {
        "model": {"vocab": {"a": 0}, "merges": []},
        "pre_tokenizer": {"type": "ByteLevel"},
        "decoder": {"type": "ByteLevel"},
        "added_tokens": [],
    }
    (document["model"] if field == "merges" else document)[field] = 5
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=rf"tokenizer\.json: .*{field} must be a list, not int"):
        Tokenizer.from_hf_json(path)


def test_tiktoken_rank_of_thousands_of_digits_names_the_file(tmp_path):
    path = tmp_path / "big.tiktoken"
    path.write_bytes(b"AA== " + b"1" * 5000 + b"\n")
    with pytest.raises(ValueError, match=r"big\.tiktoken, line 1: rank .* is too large"):
        Tokenizer.from_tiktoken(path, pattern="gpt2")


# ----- py_hf_json (with the JSON-aware mutator): a tokenizer.json whose Split regex is ""
# loaded (and encoded every text to []), and the fastllm file saved from it did not load
# back ('"pattern" must be a non-empty string'). An empty pattern is now refused.


def test_an_empty_split_pattern_is_refused(tmp_path):
    with pytest.raises(ValueError, match="non-empty regex"):
        Tokenizer(BYTES, {}, "")
    Tokenizer(BYTES, {}, r"\S+|\s+").to_hf_json(tmp_path / "tokenizer.json")
    document = json.loads((tmp_path / "tokenizer.json").read_text())
    document["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = ""
    (tmp_path / "tokenizer.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"tokenizer\.json: pattern must be .* non-empty regex"):
        Tokenizer.from_hf_json(tmp_path / "tokenizer.json")


# ----- py_hf_json (2026-12-01): a Split whose "behavior" was a list or an object raised
# TypeError (unhashable) from the behaviour lookup instead of naming the file.


@pytest.mark.parametrize("behavior", [["Isolated"], {"": None}, 5, None])
def test_a_split_behavior_that_is_not_a_string_names_the_file(tmp_path, behavior):
    Tokenizer(BYTES, {}, r"\w+|\s+|.").to_hf_json(tmp_path / "tokenizer.json")
    document = json.loads((tmp_path / "tokenizer.json").read_text())
    document["pre_tokenizer"]["pretokenizers"][0]["behavior"] = behavior
    (tmp_path / "tokenizer.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"tokenizer\.json: Split behavior .* is unknown"):
        Tokenizer.from_hf_json(tmp_path / "tokenizer.json")


# ----- py_hf_json (eighteenth session, JSON-aware mutator, within seconds): a lone surrogate
# ("\ud800" in the JSON) as a vocabulary entry or a merge reached the core's fast reader of
# plain vocabularies, which raised UnicodeEncodeError naming no file. Such a file now goes to
# the Python reader, which names it; GPT-2's vocab.json took the same path.


@pytest.mark.parametrize("where", ["vocab", "merge", "merge pair"])
def test_a_lone_surrogate_in_the_vocabulary_names_the_file(tmp_path, where):
    Tokenizer(BYTES, {}, r"\w+|\s+|.").to_hf_json(tmp_path / "tokenizer.json")
    document = json.loads((tmp_path / "tokenizer.json").read_text())
    model = document["model"]
    if where == "vocab":
        model["vocab"]["\ud800"] = len(model["vocab"])
    else:
        model["merges"].append("\ud800 a" if where == "merge" else ["\ud800", "a"])
    (tmp_path / "tokenizer.json").write_text(json.dumps(document))  # ASCII: "\ud800" escaped
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        Tokenizer.from_hf_json(tmp_path / "tokenizer.json")
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "vocab.json").write_text(json.dumps(model["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (tmp_path / "gpt2" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges[:-1]) + "\n")
    if where == "vocab":
        with pytest.raises(ValueError, match="gpt2"):
            Tokenizer.from_pretrained(tmp_path / "gpt2")


# ----- py_gpt2_vocab (eighteenth session, after 10 minutes): a vocab.json entry that
# added_tokens.json names, whose id is not an int (an object here), raised TypeError
# ("unhashable type: 'dict'") from the set of special ids instead of naming the file.


@pytest.mark.parametrize("bad_id", [{"": 0}, [1], "7", -1, True])
def test_a_named_special_with_a_bad_id_names_the_vocabulary(tmp_path, bad_id):
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 0, "<pad>": bad_id}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<pad>": 256}))
    with pytest.raises(ValueError, match=r"vocab\.json: vocab entry '<pad>' has invalid id"):
        Tokenizer.from_pretrained(tmp_path)


# ----- py_tiktoken_file (reachable once ranks with gaps load): the merges to_hf_json writes
# for a vocabulary that ranks a byte after tokens made of it were refused by fastllm's own
# reader. Merging starts from the bytes, whatever their ranks, in tiktoken and tokenizers alike.


@pytest.mark.parametrize("ids", [None, [*range(258), 700]])
def test_a_byte_ranked_after_tokens_made_of_it_exports_and_reads_back(tmp_path, ids):
    tokenizers = pytest.importorskip("tokenizers")
    tokens = [bytes([b]) for b in range(256) if b != ord("n")] + [b"in", b" in", b"ing", b"n"]
    ours = Tokenizer(tokens, {}, "gpt2", ids=ids)
    ours.to_hf_json(tmp_path / "t.json")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "t.json"))
    back = Tokenizer.from_hf_json(tmp_path / "t.json")
    for text in ["in inn ning n nnn", "tin gin", "n"]:
        assert hf.encode(text).ids == back.encode(text) == ours.encode(text), text
    assert back.mergeable_ids() == ours.mergeable_ids()


# ----- py_gpt2_vocab (likewise): an id beyond 64 bits in vocab.json raised OverflowError
# from the core's argument conversion.


def test_ids_beyond_32_bits_in_files_are_refused_naming_the_file(tmp_path):
    from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text

    vocab = {bytes_to_text(t): rank for rank, t in enumerate(BYTES)}
    vocab[bytes_to_text(b"\x00")] = 2**70
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{tmp_path}: mergeable token id {2**70} is out of range"):
        Tokenizer.from_pretrained(tmp_path)
    lines = [base64.b64encode(t) + b" %d\n" % (r + (r == 255) * 2**40) for r, t in enumerate(BYTES)]
    (tmp_path / "v.tiktoken").write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=f"v.tiktoken: mergeable token id {2**40 + 255} is out of range"):
        Tokenizer.from_tiktoken(tmp_path / "v.tiktoken", "gpt2")


# ----- py_fastllm_json (twenty-second session, once merge lists load): a version 4 file whose
# merge list is exactly what rank-based BPE joins read back from to_hf_json by rank, without the
# list. Such a list gives the same ids by rank, so the constructor no longer keeps it either.


def test_a_merge_list_rank_based_bpe_follows_reads_back_the_same(tmp_path):
    from fastllm.tokenizer.vocab import derive_merges

    tokens = BYTES + [b"ab", b"abc", b"ba", b"aa"]
    saved = Tokenizer(tokens, {"<s>": 260}, "cl100k")
    saved.save(tmp_path / "t.json")
    document = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    rank = {token: r for r, token in enumerate(tokens)}
    document.update(version=4, ignore_merges=True, merges=[[rank[a], rank[b]] for a, b in derive_merges(tokens)])
    (tmp_path / "t.json").write_text(json.dumps(document), encoding="utf-8")
    loaded = Tokenizer.load(tmp_path / "t.json")
    loaded.to_hf_json(tmp_path / "tokenizer.json")
    back = Tokenizer.from_hf_json(tmp_path / "tokenizer.json")
    assert loaded.merges() is None and back.merges() is None
    for text in ["abc aab abab", "ba ab"]:
        assert loaded.encode_ordinary(text) == back.encode_ordinary(text) == saved.encode_ordinary(text)


# ----- py_hf_json (twenty-sixth session, JSON-aware mutator, within seconds of the model's vocab
# and merges being parsed in Rust): an added token's id of 5000 digits. serde_json took it as raw
# text and Python's json then refused it with a ValueError naming no file.


@pytest.mark.parametrize("where", ["added_tokens", "model"])
def test_an_int_of_thousands_of_digits_beside_the_vocab_names_the_file(tmp_path, where):
    from fastllm import _core

    Tokenizer(BYTES, {"<s>": 256}, r"\w+|\s+|.").to_hf_json(tmp_path / "tokenizer.json")
    document = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    if where == "added_tokens":
        document["added_tokens"][0]["id"] = "BIG"
    else:
        document["model"]["dropout"] = "BIG"
    text = json.dumps(document).replace('"BIG"', "1" * 5000)
    (tmp_path / "tokenizer.json").write_text(text, encoding="utf-8")
    assert _core.split_hf_json(text.encode()) is not None  # the Rust split takes it as text
    with pytest.raises(ValueError, match=r"tokenizer\.json: not valid JSON"):
        Tokenizer.from_hf_json(tmp_path / "tokenizer.json")
