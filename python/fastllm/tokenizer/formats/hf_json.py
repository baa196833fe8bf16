"""HF ``tokenizer.json`` for byte-level BPE: writing one that ``tokenizers`` encodes
exactly like fastllm, and reading GPT-2-style ones back. The split regex is
rewritten for Oniguruma, the regex engine of HF ``tokenizers`` (:func:`to_oniguruma`).

Layout written: a BPE model (vocab and merges in GPT-2 byte-to-unicode text,
``ignore_merges`` so a piece that is a whole token stays one token, as in
tiktoken), the pre-tokenizer ``Sequence[Split(Regex(pattern), Isolated),
ByteLevel(use_regex=False)]``, a ByteLevel decoder, and the special tokens as
``added_tokens``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from fastllm.files import write_bytes_atomic
from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text, tokens_from_text_vocab
from fastllm.tokenizer.vocab import VocabData, check_merges_follow_ranks, derive_merges

#: The pattern name that HF's ``ByteLevel(use_regex=True)`` pre-tokenizer stands for.
GPT2_PATTERN_NAME = "gpt2"


def hf_json_dict(vocab: VocabData, pattern_regex: str) -> dict:
    """The ``tokenizer.json`` content for ``vocab`` (``pattern_regex``: the split regex itself)."""
    added = [
        {
            "id": token_id,
            "content": text,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for text, token_id in sorted(vocab.special_tokens.items(), key=lambda item: item[1])
    ]
    merges = [[bytes_to_text(left), bytes_to_text(right)] for left, right in derive_merges(vocab.tokens)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": to_oniguruma(pattern_regex)},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": _model_vocab(vocab),
            "merges": merges,
        },
    }


def _model_vocab(vocab: VocabData) -> dict[str, int]:
    """Token text -> id, special tokens included (as GPT-2's file has ``<|endoftext|>``):
    ``tokenizers`` only keeps an added token's id when the model vocabulary has it,
    and renumbers it otherwise, e.g. when ids have a gap below the specials."""
    entries = {bytes_to_text(token): rank for rank, token in enumerate(vocab.tokens)}
    for text, token_id in vocab.special_tokens.items():
        if text in entries:
            raise ValueError(
                f"special token {text!r} reads like the byte-level text of mergeable token {entries[text]}; "
                "tokenizer.json cannot hold both"
            )
        entries[text] = token_id
    return entries


def write_hf_json(path: str | os.PathLike, vocab: VocabData, pattern_regex: str) -> Path:
    """Writes ``tokenizer.json`` for ``vocab`` atomically; see :func:`hf_json_dict`."""
    text = json.dumps(hf_json_dict(vocab, pattern_regex), ensure_ascii=False)
    return write_bytes_atomic(path, text.encode("utf-8"))


def read_hf_json(path: str | os.PathLike, known_patterns: dict[str, str] | None = None) -> VocabData:
    """Reads a byte-level BPE ``tokenizer.json``; see :func:`parse_hf_json`."""
    source = str(path)
    try:
        obj = json.loads(Path(path).read_bytes())
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text ({exc})") from None
    except (ValueError, RecursionError) as exc:  # also: an int of too many digits, nesting too deep
        raise ValueError(f"{source}: not valid JSON: {exc}") from None
    return parse_hf_json(obj, source, known_patterns)


def parse_hf_json(obj: object, source: str = "tokenizer.json", known_patterns: dict[str, str] | None = None) -> VocabData:
    """The vocabulary of a parsed ``tokenizer.json``.

    ``known_patterns`` maps built-in pattern names to their regex; a Split
    regex equal to one of them (in Oniguruma spelling) is returned by name.
    Raises ValueError for anything fastllm cannot reproduce exactly: other
    models than BPE, normalizers, non-byte-level vocabularies, ids that do not
    follow the merge order, ids with gaps.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise ValueError(f"{source}: not a tokenizer.json (no 'model' object)")
    model = obj["model"]
    if model.get("type", "BPE") != "BPE":
        raise ValueError(f"{source}: model type {model.get('type')!r} is not supported (only byte-level BPE)")
    if obj.get("normalizer") is not None:
        raise ValueError(f"{source}: a normalizer is not supported (fastllm encodes the raw text bytes)")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise ValueError(f"{source}: BPE option {key}={model[key]!r} is not supported")
    pattern = _pattern_of(obj.get("pre_tokenizer"), source, known_patterns or {})
    specials = _specials_of(obj.get("added_tokens") or [], source)
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{source}: model.vocab is missing or empty")
    special_ids = set(specials.values())
    tokens = tokens_from_text_vocab(vocab, special_ids, source)
    # Merges are checked on the token texts: the text map is one character per byte.
    rank_of_text = {text: token_id for text, token_id in vocab.items() if token_id not in special_ids}
    check_merges_follow_ranks(_merge_pairs(model.get("merges") or [], source), rank_of_text, source)
    return VocabData(tokens, specials, pattern)


def _merge_pairs(merges: list, source: str):
    if not isinstance(merges, list):
        raise ValueError(f"{source}: model.merges must be a list, not {type(merges).__name__}")
    for number, merge in enumerate(merges, start=1):
        if isinstance(merge, str):
            fields = merge.split(" ")
        elif isinstance(merge, list):
            fields = merge
        else:
            fields = []
        if len(fields) != 2 or not all(isinstance(f, str) for f in fields):
            raise ValueError(f"{source}: merge {number} is {merge!r}, expected 'A B' or [A, B]")
        yield fields[0], fields[1]


def _specials_of(added_tokens: list, source: str) -> dict[str, int]:
    specials: dict[str, int] = {}
    if not isinstance(added_tokens, list):
        raise ValueError(f"{source}: added_tokens must be a list, not {type(added_tokens).__name__}")
    for entry in added_tokens:
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str) or not isinstance(entry.get("id"), int):
            raise ValueError(f"{source}: malformed added_tokens entry {entry!r}")
        specials[entry["content"]] = entry["id"]
    return specials


def _pattern_of(pre: object, source: str, known_patterns: dict[str, str]) -> str:
    steps = pre.get("pretokenizers") if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    if not isinstance(steps, list) or not steps or not all(isinstance(step, dict) for step in steps):
        raise ValueError(f"{source}: pre_tokenizer {pre!r} is not byte-level (expected ByteLevel)")
    *splits, byte_level = steps
    if byte_level.get("type") != "ByteLevel":
        raise ValueError(f"{source}: the last pre-tokenizer must be ByteLevel, got {byte_level.get('type')!r}")
    if byte_level.get("add_prefix_space"):
        raise ValueError(f"{source}: ByteLevel add_prefix_space=true is not supported")
    use_regex = byte_level.get("use_regex", True)
    if use_regex and not splits:
        return GPT2_PATTERN_NAME
    if use_regex or len(splits) != 1:
        raise ValueError(f"{source}: expected exactly one Split(Regex) followed by ByteLevel(use_regex=false)")
    split = splits[0]
    regex = split.get("pattern", {}).get("Regex") if isinstance(split.get("pattern"), dict) else None
    if split.get("type") != "Split" or regex is None:
        raise ValueError(f"{source}: pre-tokenizer {split.get('type')!r} is not a Split with a Regex pattern")
    if split.get("behavior") != "Isolated" or split.get("invert"):
        raise ValueError(f"{source}: the Split must be behavior=Isolated, invert=false")
    for name, known in known_patterns.items():
        if regex in (known, to_oniguruma(known)):
            return name
    return regex



# ----- the split regex in Oniguruma's spelling -----

_BOUNDED_REPEAT = re.compile(r"\{\d+(?:,\d*)?\}")


def to_oniguruma(pattern: str) -> str:
    """The Oniguruma spelling of ``pattern``, a fancy-regex (tiktoken dialect) split regex.

    Two constructs read differently there:

    * ``X{n,m}+`` is possessive in fancy-regex but means "``X{n,m}`` one or more
      times" in Oniguruma. It becomes the atomic group ``(?>X{n,m})``, which is
      what possessive means.
    * ``$`` and ``^`` mean end/start of *text* in fancy-regex (without the ``m``
      flag) but end/start of *line* in Oniguruma. They become ``\\z`` and ``\\A``.

    Everything else in the patterns tiktoken uses reads the same in both.
    """
    out: list[str] = []  # output pieces; an atom's start is an index into this list
    group_starts: list[int] = []
    last_atom = None
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            end = _escape_end(pattern, i)
            last_atom = len(out)
            out.append(pattern[i:end])
            i = end
        elif c == "[":
            end = _class_end(pattern, i)
            last_atom = len(out)
            out.append(pattern[i:end])
            i = end
        elif c == "(":
            group_starts.append(len(out))
            out.append(c)
            last_atom = None
            i += 1
        elif c == ")":
            out.append(c)
            last_atom = group_starts.pop() if group_starts else None
            i += 1
        elif c == "{" and (m := _BOUNDED_REPEAT.match(pattern, i)):
            end = m.end()
            if end < n and pattern[end] == "+" and last_atom is not None:
                atom = "".join(out[last_atom:])
                del out[last_atom:]
                out.append(f"(?>{atom}{m.group()})")
                end += 1
            else:
                out.append(m.group())
            last_atom = None
            i = end
        elif c == "$":
            out.append(r"\z")
            last_atom = None
            i += 1
        elif c == "^":
            out.append(r"\A")
            last_atom = None
            i += 1
        elif c in "*+?|":
            out.append(c)
            last_atom = None
            i += 1
        else:
            last_atom = len(out)
            out.append(c)
            i += 1
    return "".join(out)


def _escape_end(pattern: str, i: int) -> int:
    """End index of the escape sequence starting at ``pattern[i] == '\\\\'``."""
    if i + 1 >= len(pattern):
        return len(pattern)
    kind = pattern[i + 1]
    if kind in "pPxu" and i + 2 < len(pattern) and pattern[i + 2] == "{":
        close = pattern.find("}", i + 2)
        return len(pattern) if close < 0 else close + 1
    if kind == "x":
        return min(i + 4, len(pattern))
    return i + 2


def _class_end(pattern: str, i: int) -> int:
    """End index of the character class starting at ``pattern[i] == '['`` (nested classes allowed)."""
    depth = 0
    j = i
    n = len(pattern)
    while j < n:
        c = pattern[j]
        if c == "\\":
            j = _escape_end(pattern, j)
            continue
        if c == "[":
            depth += 1
            j += 1
            # A ']' right after '[' or '[^' is a literal.
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            continue
        if c == "]":
            depth -= 1
            j += 1
            if depth == 0:
                return j
            continue
        j += 1
    return n
