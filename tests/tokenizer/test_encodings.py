"""fastllm.get_encoding: cache directory, download from a local HTTP server, sha256 check,
clear offline errors, and the encodings' definitions checked against tiktoken_ext."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading

import pytest

from fastllm import get_encoding
from fastllm.tokenizer import encodings
from fastllm.tokenizer.encodings import ENCODINGS, VocabUnavailableError

from tests.support.encodings import ENCODINGS as TEST_ENCODINGS


@pytest.fixture
def serve(tmp_path):
    """``serve({file_name: bytes})`` -> base URL of a local HTTP server for those files; counts requests."""
    root = tmp_path / "www"
    root.mkdir()
    servers = []
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    def start(files):
        for name, data in files.items():
            (root / name).write_bytes(data)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    start.hits = hits
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("FASTLLM_CACHE", str(folder))
    monkeypatch.delenv("FASTLLM_OFFLINE", raising=False)
    return folder / "encodings"


def _closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_download_then_cache(serve, cache, monkeypatch, shared_data):
    www = {"r50k_base.tiktoken": (shared_data / "gpt2.tiktoken").read_bytes()}
    monkeypatch.setenv("FASTLLM_ENCODINGS_URL", serve(www))
    enc = get_encoding("gpt2")
    assert serve.hits == ["/r50k_base.tiktoken"]
    assert (cache / "r50k_base.tiktoken").read_bytes() == www["r50k_base.tiktoken"]
    assert [p.name for p in cache.iterdir()] == ["r50k_base.tiktoken"]  # no temporary files left
    assert enc.encode("hello world") == [31373, 995] and enc.n_vocab == 50257 and enc.eot_token == 50256
    # Cached now: works without the server, returns the same loaded tokenizer; r50k_base is
    # the same file under tiktoken's other name.
    monkeypatch.setenv("FASTLLM_ENCODINGS_URL", _closed_port_url())
    assert get_encoding("gpt2") is enc
    r50k = get_encoding("r50k_base")
    assert r50k.name == "r50k_base" and r50k.encode("hello world") == [31373, 995]
    assert serve.hits == ["/r50k_base.tiktoken"]


def test_sha_mismatch_is_rejected_and_not_saved(serve, cache, monkeypatch, shared_data):
    data = bytearray((shared_data / "gpt2.tiktoken").read_bytes())
    data[1000] ^= 1
    monkeypatch.setenv("FASTLLM_ENCODINGS_URL", serve({"r50k_base.tiktoken": bytes(data)}))
    with pytest.raises(ValueError, match="sha256 mismatch .*r50k_base.tiktoken: expected 306cd27f"):
        get_encoding("gpt2")
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_on_server_says_what_to_do(serve, cache, monkeypatch):
    monkeypatch.setenv("FASTLLM_ENCODINGS_URL", serve({}))
    with pytest.raises(VocabUnavailableError, match="HTTP 404"):
        get_encoding("cl100k_base")


def test_offline_error_names_the_file_and_place(cache, monkeypatch):
    monkeypatch.setenv("FASTLLM_ENCODINGS_URL", _closed_port_url())
    with pytest.raises(VocabUnavailableError) as info:
        get_encoding("o200k_base")
    message = str(info.value)
    assert str(cache / "o200k_base.tiktoken") in message
    assert ENCODINGS["o200k_base"].sha256 in message and "FASTLLM_CACHE" in message
    assert isinstance(info.value, OSError)


def test_offline_flag_forbids_download(cache, monkeypatch):
    monkeypatch.setenv("FASTLLM_OFFLINE", "1")
    with pytest.raises(VocabUnavailableError, match="FASTLLM_OFFLINE is set"):
        get_encoding("gpt2")


def test_corrupt_cached_file_offline(cache, monkeypatch, shared_data):
    cache.mkdir(parents=True)
    (cache / "r50k_base.tiktoken").write_bytes((shared_data / "gpt2.tiktoken").read_bytes()[:-10])
    monkeypatch.setenv("FASTLLM_OFFLINE", "1")
    with pytest.raises(VocabUnavailableError, match="has the wrong sha256"):
        get_encoding("gpt2")


def test_corrupt_cached_file_is_replaced_by_a_download(serve, cache, monkeypatch, shared_data):
    good = (shared_data / "gpt2.tiktoken").read_bytes()
    cache.mkdir(parents=True)
    (cache / "r50k_base.tiktoken").write_bytes(b"garbage")
    monkeypatch.setenv("FASTLLM_ENCODINGS_URL", serve({"r50k_base.tiktoken": good}))
    assert get_encoding("gpt2").encode("hello world") == [31373, 995]
    assert (cache / "r50k_base.tiktoken").read_bytes() == good


@pytest.mark.parametrize("name", list(TEST_ENCODINGS))
def test_cached_real_files_match_tiktoken(name, cache, monkeypatch, shared_data, reference_encoding):
    cache.mkdir(parents=True)
    shutil.copy(shared_data / TEST_ENCODINGS[name].vocab_file, cache / ENCODINGS[name].file_name)
    monkeypatch.setenv("FASTLLM_OFFLINE", "1")
    enc = get_encoding(name)
    ref = reference_encoding(name)
    assert enc.name == name and enc.n_vocab == ref.n_vocab
    assert enc.special_tokens == ref._special_tokens
    text = "Hello, world! <|endoftext|> 12345 naïve 中文 👍🏽"
    assert enc.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")


@pytest.mark.parametrize("name, ctor", [(n, t.tiktoken_ctor) for n, t in TEST_ENCODINGS.items()])
def test_definitions_match_tiktoken_ext(name, ctor, openai_spec, monkeypatch):
    """Hashes, patterns and special tokens as in the installed tiktoken_ext.openai_public."""
    from tiktoken_ext import openai_public

    seen = {}
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda url, expected_hash: seen.update(url=url, sha=expected_hash) or {})
    spec = getattr(openai_public, ctor)()
    ours = ENCODINGS[name]
    assert ours.special_tokens == spec["special_tokens"]
    assert ours.sha256 == seen["sha"]
    assert encodings.DEFAULT_BASE_URL + "/" + ours.file_name == seen["url"]
    from fastllm.tokenizer.patterns import builtin_pattern_regexes

    assert builtin_pattern_regexes()[ours.pattern] == spec["pat_str"]


def test_unknown_encoding_name():
    with pytest.raises(ValueError, match="unknown encoding 'p60k'; available: gpt2, cl100k_base, o200k_base, r50k_base"):
        get_encoding("p60k")
    with pytest.raises(ValueError, match="tiktoken's 'p50k_base' encoding is not provided by fastllm"):
        get_encoding("p50k_base")
    with pytest.raises(TypeError):
        get_encoding(None)
