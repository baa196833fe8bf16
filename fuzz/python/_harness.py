"""Shared by the atheris targets: the oracle for errors, and the checks every tokenizer
that loads must pass (round trips, and files we write read back the same).

A target raises (so atheris records the input) on:
- an exception other than ValueError / TypeError / OSError (subclasses included), or one
  of those whose message does not name the file (or argument) it is about;
- a tokenizer that loads but where decode(encode(text)) != text (built-in patterns), or
  whose saved files (fastllm JSON, .tiktoken, tokenizer.json) do not load back the same.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

#: Splits one fuzz input into the files of a GPT-2 directory (vocab.json, merges.txt, added_tokens.json).
GPT2_SEPARATOR = b"\n\x00--8<--\x00\n"
#: Splits one fuzz input into parts (open_tokenizer's two-file case).
PART_SEPARATOR = GPT2_SEPARATOR

CLEAR_ERRORS = (ValueError, TypeError, OSError)

#: Texts every loaded tokenizer must round-trip (the special tokens' text too, when allowed).
ROUND_TRIP_TEXTS = [
    "",
    "Hello, world! It's 2024: we'll see 12345 things.",
    "  tabs\tand\r\nnewlines\n\n  \n x   ",
    "日本語 한국어 русский e\u0301 👋🏽 🇫🇷 ½ ١٢٣ \u00a0\u3000\u0085",
    "<|endoftext|>x<|fim|> <x>",
]

BUILTIN = {"gpt2", "cl100k", "o200k", "r50k_base", "cl100k_base", "o200k_base"}


class Finding(AssertionError):
    """A result that is wrong (not an error that is allowed)."""


def scratch_dir() -> Path:
    """A fresh private folder for this process's files (in memory where /dev/shm exists)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    path = Path(tempfile.mkdtemp(prefix="fastllm-fuzz-", dir=base))
    import atexit

    atexit.register(shutil.rmtree, path, True)
    return path


def check_error(exc: BaseException, *names: str) -> None:
    """Returns when ``exc`` is one of the clear errors and names one of ``names`` (if any given);
    otherwise raises a Finding chained to it."""
    if isinstance(exc, CLEAR_ERRORS) and (not names or any(n in str(exc) for n in names)):
        return
    raise Finding(f"unclear error {type(exc).__name__}: {str(exc)[:300]!r} (expected one naming {names})") from exc


def check_tokenizer(tok, work: Path) -> None:
    """Round trips, and the three files fastllm writes load back the same."""
    try:
        _check_tokenizer(tok, work)
    except ValueError as exc:
        # Documented: a custom split regex may give up on a text (as in tiktoken).
        if tok.pattern in BUILTIN or "gave up on split pattern" not in str(exc):
            raise


def _check_tokenizer(tok, work: Path) -> None:
    from fastllm import Tokenizer

    # A pipeline (tokenizer.json steps) may drop text even when its split regex is a built-in
    # one (a Split that removes its matches, as HF does): its pieces are the reference then.
    builtin = tok.pattern in BUILTIN and tok.pipeline is None
    # Non-special added tokens match in encode_ordinary too, and split() does not see them.
    added = [t.content for t in (tok.pipeline.added_tokens if tok.pipeline else ()) if not t.special]
    for text in ROUND_TRIP_TEXTS:
        ids = tok.encode_ordinary(text)
        expected = text if builtin else "".join(tok.split(text))
        got = tok.decode_bytes(ids)
        split_is_reference = builtin or not any(a and a in text for a in added)
        if split_is_reference and got != expected.encode():
            raise Finding(f"decode(encode({text!r})) = {got!r}")
        if builtin:
            ids = tok.encode(text, allowed_special="all")
            if tok.decode_bytes(ids) != text.encode():
                raise Finding(f"decode(encode({text!r}, allowed_special='all')) != text")
        if tok.encode_batch([text, text], disallowed_special=()) != [tok.encode(text, disallowed_special=())] * 2:
            raise Finding("encode_batch != encode")

    tokens, specials, ids = tok.mergeable_tokens(), tok.special_tokens, tok.mergeable_ids()
    merges = (tok.merges(), tok.ignore_merges)
    tok.save(work / "out.json")
    back = Tokenizer.load(work / "out.json")
    if (back.mergeable_tokens(), back.special_tokens, back.pattern, back.mergeable_ids()) != (tokens, specials, tok.pattern, ids):
        raise Finding("save() then load() gives another tokenizer")
    if (back.merges(), back.ignore_merges) != merges:
        raise Finding("save() then load() gives another merge list")
    try:
        tok.save_tiktoken(work / "out.tiktoken")
    except ValueError as exc:
        # Documented: ids in another order than the merges (RoBERTa's) have no .tiktoken form,
        # nor has a tokenizer that merges by a merge list.
        listed = merges[0] is not None and "merges by its merge list" in str(exc)
        if not listed and (ids == sorted(ids) or "no .tiktoken form" not in str(exc)):
            raise
    else:
        back = Tokenizer.from_tiktoken(work / "out.tiktoken", pattern=tok.pattern, special_tokens=specials)
        if (back.mergeable_tokens(), back.mergeable_ids()) != (tokens, ids):
            raise Finding("save_tiktoken() then from_tiktoken() gives other ranks")
    try:
        tok.to_hf_json(work / "out" / "tokenizer.json")
    except ValueError as exc:
        if "reads like the byte-level text" in str(exc):
            return  # documented: tokenizer.json cannot hold both
        raise
    back = Tokenizer.from_hf_json(work / "out" / "tokenizer.json")
    if (back.mergeable_tokens(), back.special_tokens, back.mergeable_ids()) != (tokens, specials, ids):
        raise Finding("to_hf_json() then from_hf_json() gives another vocabulary")
    if merges[0] is not None and (back.merges(), back.ignore_merges) != merges:
        raise Finding("to_hf_json() then from_hf_json() gives another merge list")
    for text in ROUND_TRIP_TEXTS:
        if back.encode_ordinary(text) != tok.encode_ordinary(text):
            raise Finding(f"to_hf_json() then from_hf_json() encodes {text!r} otherwise")
    for text in ROUND_TRIP_TEXTS:
        if back.split(text) != tok.split(text):
            raise Finding(f"the pattern read back from tokenizer.json splits {text!r} differently")
