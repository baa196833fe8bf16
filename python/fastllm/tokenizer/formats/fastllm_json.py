"""fastllm's own tokenizer file (:meth:`Tokenizer.save`): one self-describing JSON document.

::

    {"format": "fastllm-tokenizer", "version": 1,
     "pattern": "cl100k",                      # built-in name or regex
     "special_tokens": {"<|endoftext|>": 1000},
     "pipeline": {...},                        # from version 2: Pipeline.to_dict()
     "ids": [2, 3, ...],                       # from version 3: the id of each rank
     "merges": [[97, 98], ...],                # only in version 4: the merge list, as pairs of ranks
     "ignore_merges": true,                    # with "merges"
     "ranks": ["AA==", "AQ==", ...]}           # base64 token bytes; list index = rank (= id without "ids")

A tokenizer with a pipeline (read from a HF ``tokenizer.json``) is written as version 2,
so that a fastllm that does not know pipelines refuses the file instead of encoding
differently; one whose ids are not its ranks (special tokens first, or gaps) as version 3,
for the same reason; one that merges by a merge list (HF's rule, from a ``tokenizer.json``
whose merges are not ranks) as version 4; any other as version 1, as before.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from pathlib import Path

from fastllm.files import write_bytes_atomic
from fastllm.tokenizer.pipeline import Pipeline
from fastllm.tokenizer.vocab import VocabData

FORMAT_NAME = "fastllm-tokenizer"
FORMAT_VERSION = 1
#: The version of files that hold a pipeline.
PIPELINE_FORMAT_VERSION = 2
#: The version of files whose ids are not the ranks (``"ids"``), with or without a pipeline.
IDS_FORMAT_VERSION = 3
#: The version of files that merge by a merge list (``"merges"``), with or without ids and a pipeline.
MERGES_FORMAT_VERSION = 4
_VERSIONS = (FORMAT_VERSION, PIPELINE_FORMAT_VERSION, IDS_FORMAT_VERSION, MERGES_FORMAT_VERSION)
#: The file name fastllm gives its tokenizer file in a data or model directory.
TOKENIZER_FILE = "tokenizer.fastllm.json"

# The writer puts "format" first; the head of the file is enough to tell it from other JSON.
_FORMAT_MARK = re.compile(rb'^\s*\{\s*"format"\s*:\s*"' + FORMAT_NAME.encode() + rb'"')
_HEAD_BYTES = 256


def write_tokenizer_file(path: str | os.PathLike, vocab: VocabData) -> Path:
    """Writes ``vocab`` to ``path`` atomically."""
    if vocab.merges is not None:
        version = MERGES_FORMAT_VERSION
    elif vocab.ids:
        version = IDS_FORMAT_VERSION
    else:
        version = PIPELINE_FORMAT_VERSION if vocab.pipeline else FORMAT_VERSION
    merges = {}
    if vocab.merges is not None:
        rank_of = {token: rank for rank, token in enumerate(vocab.tokens)}
        merges = {"merges": [[rank_of[left], rank_of[right]] for left, right in vocab.merges], "ignore_merges": vocab.ignore_merges}
    document = {
        "format": FORMAT_NAME,
        "version": version,
        "pattern": vocab.pattern,
        "special_tokens": dict(sorted(vocab.special_tokens.items(), key=lambda item: item[1])),
        **({"pipeline": vocab.pipeline.to_dict()} if vocab.pipeline else {}),
        **({"ids": list(vocab.ids)} if vocab.ids else {}),
        **merges,
        "ranks": [base64.b64encode(token).decode("ascii") for token in vocab.tokens],
    }
    # One rank per line keeps the file diffable and easy to inspect.
    head = json.dumps({k: v for k, v in document.items() if k not in ("ranks", "merges")}, ensure_ascii=False, indent=1)
    if merges:  # one merge per line, as the ranks below
        head = head[:-2] + ',\n "merges": [\n' + ",\n".join(json.dumps(m) for m in merges["merges"]) + "\n ]\n}"
    ranks = ",\n".join(json.dumps(r) for r in document["ranks"])
    text = head[:-2] + ',\n "ranks": [\n' + ranks + "\n ]\n}\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def read_tokenizer_file(path: str | os.PathLike) -> VocabData:
    """Reads a file written by :func:`write_tokenizer_file`.

    Raises ValueError naming the file and what is wrong: not JSON (with line and
    column), another format, a newer version, a missing or mistyped field, a
    rank that is not base64 (with its index), duplicate tokens.
    """
    source = str(path)
    raw = Path(path).read_bytes()
    try:
        document = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not a fastllm tokenizer file (not UTF-8: {exc})") from None
    except (ValueError, RecursionError) as exc:  # also: an int of too many digits, nesting too deep
        raise ValueError(f"{source}: corrupt or truncated tokenizer file: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ValueError(f"{source}: not a fastllm tokenizer file (no \"format\": \"{FORMAT_NAME}\")")
    version = document.get("version")
    if version not in _VERSIONS or isinstance(version, bool):
        raise ValueError(
            f"{source}: tokenizer file version {version!r} is not supported "
            f"(this fastllm reads {', '.join(map(str, _VERSIONS))})"
        )
    pipeline = None
    if version == PIPELINE_FORMAT_VERSION or (version >= IDS_FORMAT_VERSION and "pipeline" in document):
        pipeline = Pipeline.from_dict(document.get("pipeline"), source)
    pattern = document.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{source}: \"pattern\" must be a non-empty string")
    specials = document.get("special_tokens", {})
    if not isinstance(specials, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in specials.items()
    ):
        raise ValueError(f"{source}: \"special_tokens\" must map strings to integer ids")
    ranks = document.get("ranks")
    if not isinstance(ranks, list) or not ranks:
        raise ValueError(f"{source}: \"ranks\" must be a non-empty list of base64 strings")
    tokens = []
    for index, encoded in enumerate(ranks):
        try:
            if not isinstance(encoded, str):
                raise TypeError
            token = base64.b64decode(encoded, validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise ValueError(f"{source}: ranks[{index}] = {encoded!r:.60} is not a base64 string") from None
        if not token:
            raise ValueError(f"{source}: ranks[{index}] is an empty token")
        tokens.append(token)
    if len(set(tokens)) != len(tokens):
        seen: set[bytes] = set()
        duplicate = next(i for i, t in enumerate(tokens) if t in seen or seen.add(t))
        raise ValueError(f"{source}: ranks[{duplicate}] = {tokens[duplicate]!r} appears twice")
    ids = None
    if version == IDS_FORMAT_VERSION or (version == MERGES_FORMAT_VERSION and "ids" in document):
        ids = document.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError(f"{source}: \"ids\" must be a list of integer ids, one per rank")
        if len(ids) != len(tokens):
            raise ValueError(f"{source}: \"ids\" has {len(ids)} ids for {len(tokens)} ranks")
    merges, ignore_merges = None, True
    if version == MERGES_FORMAT_VERSION:
        merges, ignore_merges = _merges_of(document, tokens, source)
    return VocabData(tokens, dict(specials), pattern, pipeline, ids, merges, ignore_merges)


def _merges_of(document: dict, tokens: list[bytes], source: str) -> tuple[list[tuple[bytes, bytes]], bool]:
    merges = document.get("merges")
    if not isinstance(merges, list):
        raise ValueError(f"{source}: \"merges\" must be a list of [left rank, right rank] pairs")
    pairs = []
    for number, merge in enumerate(merges, start=1):
        if not (
            isinstance(merge, list)
            and len(merge) == 2
            and all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < len(tokens) for r in merge)
        ):
            raise ValueError(f"{source}: merge {number} is {merge!r:.60}, not a pair of ranks below {len(tokens)}")
        pairs.append((tokens[merge[0]], tokens[merge[1]]))
    ignore_merges = document.get("ignore_merges", True)
    if not isinstance(ignore_merges, bool):
        raise ValueError(f"{source}: \"ignore_merges\" must be true or false")
    return pairs, ignore_merges


def is_tokenizer_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a file written by :func:`write_tokenizer_file`."""
    with open(path, "rb") as handle:
        return _FORMAT_MARK.match(handle.read(_HEAD_BYTES)) is not None
