"""Named encodings: ``fastllm.get_encoding("gpt2" | "r50k_base" | "cl100k_base" | "o200k_base")``,
and tiktoken's module functions (``encoding_for_model``, ``encoding_name_for_model``,
``list_encoding_names``).

The vocabulary files are OpenAI's official ``.tiktoken`` files. They are read
from a local cache directory (``$FASTLLM_CACHE/encodings``, default
``~/.cache/fastllm/encodings``); on first use they are downloaded from
``$FASTLLM_ENCODINGS_URL`` (default OpenAI's public blob store), checked
against their known sha256 and written atomically. ``FASTLLM_OFFLINE=1``
forbids the download. When a file cannot be had, the error says exactly which
file to put where.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import urllib.error
from pathlib import Path
from typing import NamedTuple

from fastllm.files import write_bytes_atomic
from fastllm.tokenizer.bpe_tokenizer import Tokenizer
from fastllm.tokenizer.formats.tiktoken_file import parse_tiktoken
from fastllm.tokenizer.vocab import ENDOFTEXT

DEFAULT_BASE_URL = "https://openaipublic.blob.core.windows.net/encodings"
DOWNLOAD_TIMEOUT_S = 30.0


class EncodingSpec(NamedTuple):
    """Where a named encoding's vocabulary comes from and how it splits text."""

    file_name: str
    sha256: str
    pattern: str
    special_tokens: dict[str, int]


# Hashes and special tokens as tiktoken_ext/openai_public.py (tiktoken 0.14) has them;
# tests/tokenizer checks them against the installed tiktoken.
ENCODINGS: dict[str, EncodingSpec] = {
    "gpt2": EncodingSpec(
        "r50k_base.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        "gpt2",
        {ENDOFTEXT: 50256},
    ),
    "cl100k_base": EncodingSpec(
        "cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "cl100k",
        {
            ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": EncodingSpec(
        "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "o200k",
        {ENDOFTEXT: 199999, "<|endofprompt|>": 200018},
    ),
}
# tiktoken's r50k_base: gpt2's vocabulary under its own name.
ENCODINGS["r50k_base"] = ENCODINGS["gpt2"]
#: Other names accepted for the same encodings.
ALIASES = {"cl100k": "cl100k_base", "o200k": "o200k_base"}
#: tiktoken's encodings that fastllm does not provide, and why.
NOT_PROVIDED = {
    "p50k_base": "its vocabulary file is not one fastllm downloads",
    "p50k_edit": "its vocabulary file is not one fastllm downloads",
    "o200k_harmony": "tiktoken gives id 200018 to two special tokens, which a fastllm vocabulary does not allow",
}

# tiktoken's model table (tiktoken/model.py, 0.14): exact model names, then name prefixes
# (for versioned names), in order.
MODEL_TO_ENCODING: dict[str, str] = {
    **dict.fromkeys(["o1", "o3", "o4-mini", "gpt-5", "gpt-4.1", "gpt-4o"], "o200k_base"),
    **dict.fromkeys(
        ["gpt-4", "gpt-3.5-turbo", "gpt-3.5", "gpt-35-turbo", "davinci-002", "babbage-002",
         "text-embedding-ada-002", "text-embedding-3-small", "text-embedding-3-large"],
        "cl100k_base",
    ),
    **dict.fromkeys(
        ["text-davinci-003", "text-davinci-002", "code-davinci-002", "code-davinci-001", "code-cushman-002",
         "code-cushman-001", "davinci-codex", "cushman-codex"],
        "p50k_base",
    ),
    **dict.fromkeys(["text-davinci-edit-001", "code-davinci-edit-001"], "p50k_edit"),
    **dict.fromkeys(
        ["text-davinci-001", "text-curie-001", "text-babbage-001", "text-ada-001", "davinci", "curie", "babbage",
         "ada", "text-similarity-davinci-001", "text-similarity-curie-001", "text-similarity-babbage-001",
         "text-similarity-ada-001", "text-search-davinci-doc-001", "text-search-curie-doc-001",
         "text-search-babbage-doc-001", "text-search-ada-doc-001", "code-search-babbage-code-001",
         "code-search-ada-code-001"],
        "r50k_base",
    ),
    "gpt2": "gpt2",
    "gpt-2": "gpt2",
}
MODEL_PREFIX_TO_ENCODING: dict[str, str] = {
    **dict.fromkeys(["o1-", "o3-", "o4-mini-", "gpt-5", "gpt-4.5-", "gpt-4.1-", "chatgpt-4o-", "gpt-4o-"], "o200k_base"),
    **dict.fromkeys(["gpt-4-", "gpt-3.5-turbo-", "gpt-35-turbo-"], "cl100k_base"),
    "gpt-oss-": "o200k_harmony",
    "ft:gpt-4o": "o200k_base",
    **dict.fromkeys(["ft:gpt-4", "ft:gpt-3.5-turbo", "ft:davinci-002", "ft:babbage-002"], "cl100k_base"),
}


class VocabUnavailableError(OSError):
    """A named encoding's vocabulary file is neither cached nor downloadable."""


_loaded: dict[tuple, Tokenizer] = {}
_lock = threading.Lock()


def list_encodings() -> list[str]:
    """The names :func:`get_encoding` accepts (aliases not included)."""
    return list(ENCODINGS)


def list_encoding_names() -> list[str]:
    """tiktoken's name for :func:`list_encodings`."""
    return list_encodings()


def encoding_name_for_model(model_name: str) -> str:
    """The encoding an OpenAI model uses, by tiktoken's table (an exact name, else a known
    prefix of a versioned one); KeyError for a model it does not know."""
    if model_name in MODEL_TO_ENCODING:
        return MODEL_TO_ENCODING[model_name]
    for prefix, name in MODEL_PREFIX_TO_ENCODING.items():
        if isinstance(model_name, str) and model_name.startswith(prefix):
            return name
    raise KeyError(
        f"Could not automatically map {model_name} to a tokeniser. Please use `get_encoding` to explicitly get "
        "the tokeniser you expect."
    )


def encoding_for_model(model_name: str) -> Tokenizer:
    """The tokenizer of :func:`encoding_name_for_model`."""
    return get_encoding(encoding_name_for_model(model_name))


def is_encoding_name(name: str) -> bool:
    """Whether :func:`get_encoding` knows ``name`` (an encoding name or an alias)."""
    return name in ENCODINGS or name in ALIASES


def get_encoding(name: str) -> Tokenizer:
    """The tokenizer of a named encoding, with its special tokens.

    Loaded once per process (per cache file). Raises ValueError for an unknown
    name or a sha256 mismatch, and :class:`VocabUnavailableError` (an OSError)
    when the file is missing and cannot be downloaded.
    """
    if not isinstance(name, str):
        raise TypeError(f"encoding name must be a string, not {type(name).__name__}")
    if not is_encoding_name(name):
        if name in NOT_PROVIDED:
            raise ValueError(
                f"tiktoken's {name!r} encoding is not provided by fastllm ({NOT_PROVIDED[name]}); "
                f"available: {', '.join(ENCODINGS)}"
            )
        raise ValueError(f"unknown encoding {name!r}; available: {', '.join(ENCODINGS)}")
    canonical = ALIASES.get(name, name)
    with _lock:
        tokenizer = _loaded.get(_file_key(canonical))
        if tokenizer is None:
            path, data = _verified_vocab(canonical)
            spec = ENCODINGS[canonical]
            tokens, ids = parse_tiktoken(data, source=str(path))
            tokenizer = Tokenizer(tokens, spec.special_tokens, spec.pattern, name=canonical, ids=ids)
            _loaded[_file_key(canonical)] = tokenizer
    return tokenizer


def cache_dir() -> Path:
    """Where encoding files are kept: ``$FASTLLM_CACHE/encodings`` or ``~/.cache/fastllm/encodings``."""
    root = os.environ.get("FASTLLM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fastllm")
    return Path(root) / "encodings"


def download_url(name: str) -> str:
    """The URL a named encoding's file is downloaded from (``$FASTLLM_ENCODINGS_URL`` overrides the base)."""
    base = os.environ.get("FASTLLM_ENCODINGS_URL") or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{ENCODINGS[name].file_name}"


def ensure_vocab_file(name: str) -> Path:
    """The cached vocabulary file of encoding ``name``, downloading it first if needed."""
    return _verified_vocab(ALIASES.get(name, name))[0]


def _file_key(name: str) -> tuple | None:
    path = cache_dir() / ENCODINGS[name].file_name
    try:
        stat = path.stat()
    except OSError:
        return None
    return (name, str(path), stat.st_mtime_ns, stat.st_size)


def _verified_vocab(name: str) -> tuple[Path, bytes]:
    """The cached file of encoding ``name`` and its content, whose sha256 is checked;
    downloaded first when missing or wrong."""
    spec = ENCODINGS[name]
    path = cache_dir() / spec.file_name
    problem = "is not there"
    if path.is_file():
        data = path.read_bytes()
        if _sha256(data) == spec.sha256:
            return path, data
        problem = "has the wrong sha256 (corrupt or a different file)"
    url = download_url(name)
    if os.environ.get("FASTLLM_OFFLINE", "") not in ("", "0"):
        raise VocabUnavailableError(_offline_message(name, path, problem, url, "FASTLLM_OFFLINE is set"))
    try:
        data = _download(url)
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = getattr(exc, "reason", None) or exc
        raise VocabUnavailableError(_offline_message(name, path, problem, url, f"download failed: {reason}")) from exc
    actual = _sha256(data)
    if actual != spec.sha256:
        raise ValueError(
            f"sha256 mismatch for {url}: expected {spec.sha256}, got {actual}; "
            "the download is corrupt or not the official file, nothing was saved"
        )
    write_bytes_atomic(path, data)
    return path, data


def _offline_message(name: str, path: Path, problem: str, url: str, reason: str) -> str:
    spec = ENCODINGS[name]
    return (
        f"the vocabulary of encoding {name!r} {problem} at {path}, and it could not be downloaded "
        f"from {url} ({reason}). To use it offline, copy {spec.file_name} (sha256 {spec.sha256}) "
        f"to {path}, or set FASTLLM_CACHE to a directory whose 'encodings' folder holds it."
    )


def _download(url: str) -> bytes:
    import urllib.request

    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        chunks = []
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=f"downloading {url.rsplit('/', 1)[-1]}",
            disable=None, file=sys.stderr,
        ) as progress:
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                progress.update(len(chunk))
    return b"".join(chunks)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
