"""How ``fastllm tokenizer encode/show/stats`` read their input: invalid UTF-8 is refused
with the input's name and the byte offset, and input is streamed in pieces, giving the
same output as encoding the whole text while memory stays bounded."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastllm.cli import tokenizer_cmd
from fastllm.cli.main import main
from fastllm.tokenizer.display import token_pieces, visible

SPECIAL = "<|endoftext|>"
NAMED = {"gpt2": "r50k_base.tiktoken", "cl100k_base": "cl100k_base.tiktoken", "o200k_base": "o200k_base.tiktoken"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, shared_data):
    """A FASTLLM_CACHE whose encodings are the shared vocab files (linked, not copied)."""
    root = tmp_path_factory.mktemp("cache")
    (root / "encodings").mkdir()
    for name in NAMED.values():
        source = shared_data / ("gpt2.tiktoken" if name.startswith("r50k") else name)
        (root / "encodings" / name).symlink_to(source)
    return root


@pytest.fixture
def offline(cache_dir, monkeypatch):
    monkeypatch.setenv("FASTLLM_CACHE", str(cache_dir))
    monkeypatch.setenv("FASTLLM_OFFLINE", "1")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def pipe(monkeypatch, data: bytes) -> None:
    """Makes ``data`` the process's stdin, decoded the way Python sets up a real one."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr("sys.stdin", stream)


# -- invalid UTF-8 ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["encode", "show"])
def test_piped_invalid_utf8_is_refused(offline, capsys, monkeypatch, command):
    pipe(monkeypatch, "caf\u00e9 ok\n".encode("latin-1"))
    code, out, err = run(capsys, "tokenizer", command)
    assert code == 1 and out == ""
    assert err == "fastllm tokenizer: error: stdin: not UTF-8 text (invalid byte at offset 3)\n"


@pytest.mark.parametrize("command", ["encode", "show"])
def test_text_argument_with_undecodable_bytes_is_refused(offline, capsys, command):
    # The OS hands Python undecodable argv bytes as lone surrogates (surrogateescape).
    text = os.fsdecode(b"na\xc3\xafve caf\xe9")
    code, out, err = run(capsys, "tokenizer", command, text)
    assert code == 1 and out == ""
    assert err == "fastllm tokenizer: error: the text argument: not UTF-8 text (invalid byte at offset 10)\n"


@pytest.mark.parametrize("command", ["encode", "show"])
def test_invalid_byte_offset_is_exact_across_reads(offline, capsys, monkeypatch, tmp_path, command):
    monkeypatch.setattr(tokenizer_cmd, "READ_BYTES", 5)
    good = "ab\u00e9\u65e5\U0001f600\n".encode() * 7  # characters split across reads are fine
    for bad, offset in [(b"\xff", 0), (b"\xe6\x97", 0), (b"\xe6\x97x", 0), (b"\xc0\xaf", 0)]:
        data = good + bad
        (tmp_path / "in.txt").write_bytes(data)
        code, out, err = run(capsys, "tokenizer", command, "--file", str(tmp_path / "in.txt"))
        assert code == 1 and f"in.txt: not UTF-8 text (invalid byte at offset {len(good) + offset})" in err
        pipe(monkeypatch, data)
        code, out, err = run(capsys, "tokenizer", command)
        assert code == 1 and f"stdin: not UTF-8 text (invalid byte at offset {len(good) + offset})" in err
        assert "Traceback" not in err and "surrogate" not in err


def test_stats_refuses_invalid_utf8(offline, capsys, tmp_path):
    (tmp_path / "bin.dat").write_bytes(b"hello\n" * 3 + b"\x80rest")
    code, out, err = run(capsys, "tokenizer", "stats", str(tmp_path / "bin.dat"))
    assert code == 1 and out == ""
    assert err == f"fastllm tokenizer: error: {tmp_path / 'bin.dat'}: not UTF-8 text (invalid byte at offset 18)\n"


def test_real_pipe_gives_one_line_error(cache_dir, tmp_path):
    env = {**os.environ, "FASTLLM_CACHE": str(cache_dir), "FASTLLM_OFFLINE": "1", "LC_ALL": "C.UTF-8"}
    for command in ("encode", "show"):
        done = subprocess.run(
            [sys.executable, "-m", "fastllm", "tokenizer", command], input=b"ok \xff\xfe\n",
            capture_output=True, env=env, timeout=120,
        )
        assert done.returncode == 1 and done.stdout == b""
        assert done.stderr == b"fastllm tokenizer: error: stdin: not UTF-8 text (invalid byte at offset 3)\n"


# -- streaming gives the same output as the whole text ----------------------------------------

# Letters before newlines (where chunks are cut), other whitespace, digits, punctuation,
# marks, special tokens, and any character.
stream_text = st.lists(
    st.one_of(
        st.sampled_from(list("abZ\u0436\u65e5\n\n\n  \t\r.1'!") + ["\u0301", "\r\n", "'s", "\U0001f600", SPECIAL]),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=300,
).map("".join)


@pytest.fixture(scope="module")
def tokenizers(fastllm_encoding):
    return {name: fastllm_encoding(name) for name in NAMED}


def expected_show(tokenizer, text: str) -> str:
    ids = tokenizer.encode(text, allowed_special="all")
    pieces = token_pieces(tokenizer, ids)
    return "\n".join([
        "|".join(visible(p.text) for p in pieces),
        f"{len(ids)} tokens, {len(text.encode())} bytes",
        " ".join(map(str, ids)),
    ]) + "\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=stream_text, name=st.sampled_from(sorted(NAMED)), read_bytes=st.integers(1, 40),
       chunk_bytes=st.integers(1, 30), via_stdin=st.booleans())
def test_streamed_output_equals_whole_text(tokenizers, capsys, monkeypatch, tmp_path, text, name, read_bytes,
                                           chunk_bytes, via_stdin):
    tokenizer = tokenizers[name]
    monkeypatch.setattr(tokenizer_cmd, "READ_BYTES", read_bytes)
    monkeypatch.setattr(tokenizer_cmd, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(tokenizer_cmd, "_tokenizer", lambda args: tokenizer)
    (tmp_path / "t.txt").write_bytes(text.encode())

    def source():
        if via_stdin:
            pipe(monkeypatch, text.encode())
            return ()
        return ("--file", str(tmp_path / "t.txt"))

    ids = tokenizer.encode(text, allowed_special="all")
    assert run(capsys, "tokenizer", "encode", "--allow-special", *source()) == (0, " ".join(map(str, ids)) + "\n", "")
    assert run(capsys, "tokenizer", "encode", "--allow-special", "--json", *source())[1] == json.dumps(ids) + "\n"
    assert run(capsys, "tokenizer", "show", "--no-color", "--ids", *source())[1] == expected_show(tokenizer, text)
    code, out, _ = run(capsys, "tokenizer", "stats", "--json", str(tmp_path / "t.txt"))
    stats = json.loads(out)
    ordinary = tokenizer.encode_ordinary(text)
    assert (stats["tokens"], stats["bytes"], stats["chars"]) == (len(ordinary), len(text.encode()), len(text))
    if SPECIAL in text:  # not allowed: refused wherever it is, as for the whole text
        code, _, err = run(capsys, "tokenizer", "encode", *source())
        assert code == 1 and SPECIAL in err


def test_streamed_file_matches_whole_encoding(offline, capsys, monkeypatch, shared_data, tokenizers):
    """A real corpus read in many pieces, with the default chunk size."""
    monkeypatch.setattr(tokenizer_cmd, "READ_BYTES", 100_003)
    path = shared_data / "multilingual.txt"
    text = path.read_text(encoding="utf-8")
    for name in NAMED:
        ids = tokenizers[name].encode(text, allowed_special="all")
        code, out, _ = run(capsys, "tokenizer", "encode", "-t", name, "--allow-special", "--file", str(path))
        assert code == 0 and out == " ".join(map(str, ids)) + "\n", name


def test_colors_continue_across_chunks(offline, capsys, monkeypatch):
    monkeypatch.setattr(tokenizer_cmd, "CHUNK_BYTES", 1)
    code, out, _ = run(capsys, "tokenizer", "show", "--color", "a\nb\nc\nd\ne\nf\ng\nh\n")
    colors = [int(part.split("m", 1)[0]) for part in out.splitlines()[0].split("\x1b[30;")[1:]]
    assert colors == [42, 43, 46, 45, 44, 41, 47, 42, 43, 46, 45, 44, 41, 47, 42, 43]


def test_empty_input(offline, capsys, monkeypatch):
    pipe(monkeypatch, b"")
    assert run(capsys, "tokenizer", "encode") == (0, "\n", "")
    pipe(monkeypatch, b"")
    assert run(capsys, "tokenizer", "encode", "--json") == (0, "[]\n", "")
    pipe(monkeypatch, b"")
    assert run(capsys, "tokenizer", "show", "--ids") == (0, "\n0 tokens, 0 bytes\n\n", "")


def test_error_after_output_ends_the_line(offline, capsys, monkeypatch):
    monkeypatch.setattr(tokenizer_cmd, "READ_BYTES", 8)
    monkeypatch.setattr(tokenizer_cmd, "CHUNK_BYTES", 2)
    pipe(monkeypatch, b"ab\ncd\nef\ngh\nij\nkl\nmn\nop\n\xff")
    code, out, err = run(capsys, "tokenizer", "encode")
    assert code == 1 and out.endswith("\n") and out.count("\n") == 1
    assert "stdin: not UTF-8 text (invalid byte at offset 24)" in err


# -- memory --------------------------------------------------------------------------------------

# VmHWM, not ru_maxrss: a child's ru_maxrss starts at the parent's size when forked, so a
# big pytest process would hide any difference.
PEAK_SCRIPT = textwrap.dedent("""
    import sys
    from fastllm.cli.main import main
    code = main(sys.argv[2:])
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(sys.argv[1], "w") as f:
        f.write(f"{code} {peak * 1024}")
""")


def peak_rss(tmp_path, env, argv) -> int:
    """Peak resident memory in bytes of ``fastllm ARGV`` in a fresh interpreter."""
    report = tmp_path / "peak.txt"
    subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(report), *argv], env=env, check=True, timeout=600,
                   stdout=subprocess.DEVNULL)
    code, peak = report.read_text().split()
    assert code == "0"
    return int(peak)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from Linux's /proc")
@pytest.mark.parametrize("command", [("encode",), ("show", "--ids", "--no-color"), ("stats",)])
def test_memory_stays_bounded_on_a_long_line(cache_dir, tmp_path, shared_data, command):
    """A 24 MB line costs no more than a 5.6 MB one: the whole-text code took 0.45 to
    1.1 GiB more here (20 to 50 times the input)."""
    words = shared_data.joinpath("tinyshakespeare.txt").read_text(encoding="utf-8").replace("\n", " ")
    big, smaller = tmp_path / "big.txt", tmp_path / "smaller.txt"
    big.write_text(words * 22, encoding="utf-8")
    smaller.write_text(words * 5, encoding="utf-8")
    env = {**os.environ, "FASTLLM_CACHE": str(cache_dir), "FASTLLM_OFFLINE": "1"}

    def args(path):
        if command[0] == "stats":
            return ["tokenizer", "stats", str(path)]
        return ["tokenizer", *command, "--file", str(path)]

    # Against a text large enough to fill what is bounded (the encoder's piece cache, up to
    # 14 MiB a thread; the readers' buffers; Python's arenas), not against a tiny one: `show`
    # takes some 50 MiB more for 5.6 MB than for 10 KB, and then 2 MiB more for 24 MB.
    baseline = peak_rss(tmp_path, env, args(smaller))
    peak = peak_rss(tmp_path, env, args(big))
    assert big.stat().st_size > 24_000_000
    assert peak - baseline < 32 * 2**20, f"{command[0]}: peak {peak / 2**20:.0f} MiB vs {baseline / 2**20:.0f} MiB"
