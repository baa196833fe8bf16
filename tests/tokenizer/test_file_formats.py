"""The vocabulary file formats: .tiktoken, fastllm's JSON file, GPT-2's byte map."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer
from fastllm.tokenizer.formats.fastllm_json import read_tokenizer_file
from fastllm.tokenizer.formats.gpt2_vocab import BYTE_TO_CHAR, bytes_to_text, text_to_bytes
from fastllm.tokenizer.formats.tiktoken_file import format_tiktoken, parse_tiktoken, read_tiktoken, write_tiktoken

BYTES = [bytes([b]) for b in range(256)]


def test_gpt2_byte_map_is_a_bijection_onto_printable_characters():
    assert len(set(BYTE_TO_CHAR)) == 256
    assert all(c.isprintable() and not c.isspace() for c in BYTE_TO_CHAR)
    assert BYTE_TO_CHAR[ord("A")] == "A" and BYTE_TO_CHAR[ord(" ")] == "\u0120" and BYTE_TO_CHAR[0] == "\u0100"


@given(st.binary(max_size=64))
@settings(max_examples=100, deadline=None)
def test_gpt2_byte_text_round_trip(data):
    assert text_to_bytes(bytes_to_text(data)) == data


def test_gpt2_text_outside_the_map_is_rejected():
    with pytest.raises(ValueError, match="U\\+4E2D"):
        text_to_bytes("a中")


def test_tiktoken_round_trip_and_tiktoken_reads_our_file(tmp_path):
    from tiktoken.load import load_tiktoken_bpe

    tokens = BYTES + [b"ab", b"\xff\xfe", b" the"]
    path = write_tiktoken(tmp_path / "v.tiktoken", tokens)
    assert read_tiktoken(path) == (tokens, None)
    assert load_tiktoken_bpe(str(path)) == {t: i for i, t in enumerate(tokens)}
    # Ranks with gaps (ids that are not 0..n-1), as tiktoken allows them.
    ids = [i + 2 + (i > 100) * 7 for i in range(len(tokens))]
    path = write_tiktoken(tmp_path / "gaps.tiktoken", tokens, ids)
    assert read_tiktoken(path) == (tokens, ids)
    assert load_tiktoken_bpe(str(path)) == dict(zip(tokens, ids))


def test_tiktoken_lines_in_any_order_and_blank_lines():
    data = b"YQ== 1\n\nYg== 0\r\n"
    assert parse_tiktoken(data) == ([b"b", b"a"], None)
    assert parse_tiktoken(b"YQ== 5\nYg== 2\n") == ([b"b", b"a"], [2, 5])  # gaps: the ranks are the ids


@pytest.mark.parametrize(
    "content, message",
    [
        (b"YQ== 0\nYg==\n", r"line 2: expected 'BASE64TOKEN RANK'"),
        (b"YQ== 0\nYg== 1 extra\n", r"line 2: expected"),
        (b"YQ== 0\nY!== 1\n", r"line 2: .* is not valid base64"),
        (b"YQ== 0\nYg= 1\n", r"line 2: .* is not valid base64"),  # truncated base64
        (b"YQ== 0\nYg== x1\n", r"line 2: rank 'x1' is not a non-negative integer"),
        (b"YQ== 0\nYg== -1\n", r"line 2: rank '-1'"),
        (b"YQ== 0\nYg== 0\n", r"line 2: rank 0 appears twice"),
        (b"YQ== 0\nYQ== 1\n", r"line 2: token b'a' already has a rank \(line 1\)"),
        (b"\n\n", r"no tokens"),
        (b"YQ== 0\n\xff\xfe 1\n", r"line 2: .* is not valid base64"),
    ],
)
def test_corrupt_tiktoken_names_the_line(content, message):
    with pytest.raises(ValueError, match=message):
        parse_tiktoken(content, source="v.tiktoken")


def test_truncated_real_vocab_file_names_the_line(shared_data, tmp_path):
    data = (shared_data / "gpt2.tiktoken").read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 4  # a few bytes into a line
    path = tmp_path / "cut.tiktoken"
    path.write_bytes(data[:cut])
    line = data[:cut].count(b"\n") + 1
    with pytest.raises(ValueError, match=rf"cut.tiktoken, line {line}:"):
        Tokenizer.from_tiktoken(path, pattern="gpt2")


@st.composite
def _tiktoken_contents(draw):
    """.tiktoken contents as written, or with what a hand-edited or damaged file holds: other
    separators and line ends, blank lines, leading zeros, base64 without padding or with
    trailing bits set, ranks with gaps or twice, a token twice, junk lines."""
    tokens = draw(st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=12, unique=True))
    ranks = list(range(len(tokens)))
    if draw(st.booleans()):
        ranks = draw(st.permutations(ranks))
    damage = draw(st.sampled_from(["none", "none", "gap", "rank twice", "token twice", "unpadded",
                                   "trailing bits", "junk", "three fields", "empty token", "long rank"]))
    lines = []
    for token, rank in zip(tokens, ranks):
        encoded = base64.b64encode(token)
        rank_text = b"%d" % rank
        if draw(st.booleans()):
            rank_text = b"0" * draw(st.integers(1, 3)) + rank_text
        sep = draw(st.sampled_from([b" ", b"\t", b"  ", b" \x0b"]))
        end = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b" \n", b"\n\t \n"]))
        lines.append([encoded, sep, rank_text, end])
    k = draw(st.integers(0, len(lines) - 1))
    if damage == "gap":
        lines[k][2] = b"%d" % (len(tokens) + 3)
    elif damage == "rank twice" and len(lines) > 1:
        lines[k][2] = lines[k - 1][2]
    elif damage == "token twice" and len(lines) > 1:
        lines[k][0] = lines[k - 1][0]
    elif damage == "unpadded":
        lines[k][0] = lines[k][0].rstrip(b"=") or b"YQ"
    elif damage == "trailing bits" and lines[k][0].endswith(b"=="):
        lines[k][0] = lines[k][0][:1] + b"R=="  # 'R' sets bits the padding drops
    elif damage == "junk":
        lines.insert(k, [draw(st.binary(max_size=8)), b"", b"", b"\n"])
    elif damage == "three fields":
        lines[k][2] += b" 1"
    elif damage == "empty token":
        lines[k][0] = b"="
    elif damage == "long rank":
        lines[k][2] = b"1" * 19
    tail = b"" if draw(st.booleans()) else b"\n"
    return b"".join(b"".join(line) for line in lines) + tail


@given(_tiktoken_contents())
@settings(max_examples=400, deadline=None)
def test_fast_tiktoken_reader_agrees_with_the_python_one(data):
    # The core's reader takes only files with nothing unusual; whatever it takes, it must read
    # as the Python reader does, and whatever the Python reader refuses, it must leave alone.
    from fastllm import _core
    from fastllm.tokenizer.formats.tiktoken_file import _parse_in_python

    fast = _core.read_tiktoken_plain(data)
    try:
        slow = _parse_in_python(data, "v.tiktoken")
    except ValueError:
        assert fast is None
        return
    assert fast is None or (fast, None) == slow
    assert parse_tiktoken(data, "v.tiktoken") == slow


def test_fast_tiktoken_reader_takes_the_files_people_use(shared_data, tmp_path):
    # Official files, and what fastllm writes: the fast reader, not the Python fallback.
    from fastllm import _core

    from tests.support.encodings import ENCODINGS

    for enc in ENCODINGS.values():
        path = shared_data / enc.vocab_file
        if path.is_file():
            tokens = _core.read_tiktoken_plain(path.read_bytes())
            assert tokens is not None and len(tokens) > 50_000, enc.vocab_file
    written = write_tiktoken(tmp_path / "v.tiktoken", BYTES + [b"ab", b"\xff\xfe"])
    assert _core.read_tiktoken_plain(written.read_bytes()) == BYTES + [b"ab", b"\xff\xfe"]


def test_format_tiktoken_matches_tiktoken_layout():
    assert format_tiktoken([b"a", b"bc"]) == b"YQ== 0\nYmM= 1\n"


def test_save_load_round_trip(tmp_path, byte_tokenizer):
    path = tmp_path / "tok.json"
    byte_tokenizer.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.mergeable_tokens() == byte_tokenizer.mergeable_tokens()
    assert loaded.special_tokens == byte_tokenizer.special_tokens
    assert loaded.pattern == "cl100k"
    text = "the thing <|endoftext|> in the ring"
    assert loaded.encode(text, allowed_special="all") == byte_tokenizer.encode(text, allowed_special="all")


def test_save_load_keeps_a_custom_regex(tmp_path):
    tok = Tokenizer(BYTES, {}, r"\w+|\s+|[^\w\s]+")
    tok.save(tmp_path / "t.json")
    assert Tokenizer.load(tmp_path / "t.json").pattern == r"\w+|\s+|[^\w\s]+"


def _saved_document(tmp_path, byte_tokenizer):
    byte_tokenizer.save(tmp_path / "ok.json")
    return json.loads((tmp_path / "ok.json").read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format="other"), "not a fastllm tokenizer file"),
        (lambda d: d.update(version=99), "version 99 is not supported"),
        (lambda d: d.update(pattern=3), '"pattern" must be a non-empty string'),
        (lambda d: d.update(special_tokens={"x": "1"}), '"special_tokens" must map strings to integer ids'),
        (lambda d: d.update(ranks=[]), '"ranks" must be a non-empty list'),
        (lambda d: d["ranks"].__setitem__(7, "not base64!"), r"ranks\[7\] = .* is not a base64 string"),
        (lambda d: d["ranks"].__setitem__(7, 12), r"ranks\[7\] = 12 is not a base64 string"),
        (lambda d: d["ranks"].__setitem__(7, base64.b64encode(b"a").decode()), r"ranks\[97\] = b'a' appears twice"),
    ],
)
def test_corrupt_tokenizer_file_says_what_is_wrong(tmp_path, byte_tokenizer, mutate, message):
    document = _saved_document(tmp_path, byte_tokenizer)
    mutate(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        read_tokenizer_file(path)


def test_truncated_tokenizer_file(tmp_path, byte_tokenizer):
    byte_tokenizer.save(tmp_path / "ok.json")
    data = (tmp_path / "ok.json").read_bytes()
    (tmp_path / "cut.json").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.json: corrupt or truncated tokenizer file: .*line \d+"):
        Tokenizer.load(tmp_path / "cut.json")


def test_non_utf8_tokenizer_file(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="bin.json"):
        Tokenizer.load(tmp_path / "bin.json")


def test_loaded_file_with_missing_single_byte_is_rejected(tmp_path, byte_tokenizer):
    document = _saved_document(tmp_path, byte_tokenizer)
    del document["ranks"][65]
    (tmp_path / "bad.json").write_text(json.dumps(document))
    with pytest.raises(ValueError):
        Tokenizer.load(tmp_path / "bad.json")


def test_collector_paused_gives_the_collector_back_as_it_was():
    import gc

    from fastllm.tokenizer.formats import collector_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("a reader's error")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled(), "a collector the caller had paused stays paused"
    finally:
        gc.enable()
