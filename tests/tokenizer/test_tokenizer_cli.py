"""``fastllm tokenizer ...`` through fastllm.cli.main.main([...])."""

from __future__ import annotations

import io
import json

import pytest

from fastllm import Tokenizer
from fastllm.cli.main import main



def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_encode_decode(gpt2_cached, capsys):
    assert run(capsys, "tokenizer", "encode", "hello world") == (0, "31373 995\n", "")
    assert run(capsys, "tokenizer", "encode", "--json", "hello world")[1] == "[31373, 995]\n"
    assert run(capsys, "tokenizer", "decode", "31373", "995")[1] == "hello world\n"
    assert run(capsys, "tokenizer", "decode", "[31373,", "995]")[1] == "hello world\n"


def test_encode_special_tokens(gpt2_cached, capsys):
    code, _, err = run(capsys, "tokenizer", "encode", "a<|endoftext|>")
    assert code == 1 and "fastllm tokenizer: error:" in err and "<|endoftext|>" in err
    assert run(capsys, "tokenizer", "encode", "--allow-special", "a<|endoftext|>")[1] == "64 50256\n"


def test_encode_from_file_and_stdin(gpt2_cached, capsys, tmp_path, monkeypatch):
    (tmp_path / "t.txt").write_text("hello world", encoding="utf-8")
    assert run(capsys, "tokenizer", "encode", "--file", str(tmp_path / "t.txt"))[1] == "31373 995\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("hello world"))
    assert run(capsys, "tokenizer", "encode")[1] == "31373 995\n"


def test_bad_inputs_are_clear_errors(gpt2_cached, capsys, tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    cases = [
        (("tokenizer", "encode", "--file", str(tmp_path / "latin1.txt")), "latin1.txt: not UTF-8 text (invalid byte at offset 3)"),
        (("tokenizer", "decode", "1", "x2"), "'x2' is not a token id"),
        (("tokenizer", "decode", "99999999"), "99999999"),
        (("tokenizer", "encode", "-t", str(tmp_path / "missing"), "a"), "not a named encoding"),
        (("tokenizer", "stats", str(tmp_path / "nope.txt")), "nope.txt"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert code == 1 and message in err, (argv, err)
        assert "Traceback" not in err


def test_decode_strict(gpt2_cached, capsys):
    # GPT-2 token 127 is the lone byte 0xc3, the start of a two-byte character.
    code, out, _ = run(capsys, "tokenizer", "decode", "127")
    assert code == 0 and out == "\ufffd\n"
    code, _, err = run(capsys, "tokenizer", "decode", "--strict", "127")
    assert code == 1 and "utf-8" in err.lower()


def test_stats(gpt2_cached, capsys, shared_data):
    code, out, _ = run(capsys, "tokenizer", "stats", "--json", str(shared_data / "tinyshakespeare.txt"))
    stats = json.loads(out)
    assert code == 0 and stats["tokens"] == 338_025 and stats["bytes"] == 1_115_394
    assert stats["bytes_per_token"] == pytest.approx(1_115_394 / 338_025)
    code, out, _ = run(capsys, "tokenizer", "stats", str(shared_data / "tinyshakespeare.txt"))
    assert "bytes_per_token" in out and "338,025" in out


def test_show_plain_and_colored(gpt2_cached, capsys):
    code, out, _ = run(capsys, "tokenizer", "show", "Hello world's 鼱\n")
    lines = out.splitlines()
    # GPT-2 encodes " 鼱" as three tokens that split the character: shown as one piece.
    assert lines[0] == "Hello| world|'s| 鼱|\\n"
    assert lines[1].startswith("7 tokens, ")
    code, out, _ = run(capsys, "tokenizer", "show", "--no-color", "a<|endoftext|>b")
    assert out.splitlines()[0] == "a|<|endoftext|>|b"
    code, out, _ = run(capsys, "tokenizer", "show", "--color", "--ids", "Hi there")
    first = out.splitlines()[0]
    assert first == "\x1b[30;42mHi\x1b[0m\x1b[30;43m there\x1b[0m"
    assert out.splitlines()[2] == "17250 612"


def test_train_then_use(tmp_path, capsys, shared_data):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text((shared_data / "tinyshakespeare.txt").read_text()[:100_000], encoding="utf-8")
    out = tmp_path / "tok.json"
    code, stdout, err = run(
        capsys, "tokenizer", "train", str(corpus), "--vocab-size", "400", "--pattern", "gpt2",
        "--special", "<|endoftext|>", "--out", str(out), "--no-progress",
    )
    assert code == 0, err
    assert "trained 400 ids" in stdout
    tok = Tokenizer.load(out)
    assert tok.n_vocab == 400 and tok.eot_token == 399 and tok.pattern == "gpt2"
    code, stdout, _ = run(capsys, "tokenizer", "encode", "-t", str(out), "First Citizen")
    assert [int(i) for i in stdout.split()] == tok.encode("First Citizen")
    # Other output formats, chosen by name or flag, are readable back.
    run(capsys, "tokenizer", "train", str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "v.tiktoken"), "--no-progress")
    code, stdout, _ = run(capsys, "tokenizer", "encode", "-t", str(tmp_path / "v.tiktoken"), "--pattern", "cl100k", "the")
    assert code == 0 and stdout.strip()
    run(capsys, "tokenizer", "train", str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "tokenizer.json"), "--no-progress")
    assert Tokenizer.from_hf_json(tmp_path / "tokenizer.json").n_vocab == 300


def test_train_errors(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("some text", encoding="utf-8")
    code, _, err = run(capsys, "tokenizer", "train", str(tmp_path / "a.txt"), "--vocab-size", "100", "--out", str(tmp_path / "t.json"))
    assert code == 1 and "256" in err
    code, _, err = run(capsys, "tokenizer", "train", str(tmp_path / "missing.txt"), "--vocab-size", "300", "--out", str(tmp_path / "t.json"))
    assert code == 1 and "missing.txt" in err
    code, _, err = run(capsys, "tokenizer", "encode", "-t", str(tmp_path / "a.txt"), "x")
    assert code == 1 and "a.txt" in err


def test_tiktoken_file_needs_a_pattern(tmp_path, capsys, shared_data):
    code, _, err = run(capsys, "tokenizer", "encode", "-t", str(shared_data / "gpt2.tiktoken"), "x")
    assert code == 1 and "holds no split pattern" in err
    code, out, _ = run(capsys, "tokenizer", "encode", "-t", str(shared_data / "gpt2.tiktoken"), "--pattern", "gpt2", "hello world")
    assert out == "31373 995\n"
