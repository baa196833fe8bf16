"""HF ``tokenizer.json`` for byte-level BPE: reading one so that fastllm encodes
exactly like ``tokenizers``, and writing one that ``tokenizers`` (and transformers'
``PreTrainedTokenizerFast``) encodes exactly like fastllm.

What is read (anything else is refused with a ValueError naming the file and the part):

* model: ``BPE``, no ``byte_fallback``, ``dropout``, subword prefix or suffix. Merges
  that can be read as ranks (each builds one token, after its merged parts) merge by
  rank, as fastllm and tiktoken do, with the ids in merge order or in any other
  (RoBERTa numbers GPT-2's tokens by frequency); any other merge list (several merges
  for one token, as files converted from tiktoken ranks have: Llama 3's, GPT-OSS's; a
  merge whose part only a later merge builds) is kept and merged by, as ``tokenizers``
  does (``VocabData.merges``, slower: see ``rust/src/bpe/listed_merges.rs``); special tokens at any ids,
  below the mergeable ones too (HF's trainer puts them first: GPT-NeoX's
  ``<|endoftext|>`` is 0);
* normalizer: none, an empty ``Sequence``, or ``NFC`` (alone or in a ``Sequence``);
* pre-tokenizer: ``Split`` (any behavior, ``invert``), ``Digits``, and a final
  ``ByteLevel`` (with or without its regex and prefix space), alone or in a
  ``Sequence``; regexes are rewritten from Oniguruma's dialect (:mod:`.oniguruma`);
* added tokens, special or not, with their ``single_word``/``lstrip``/``rstrip``/
  ``normalized`` flags, at the ids ``tokenizers`` gives them;
* post-processor: ``ByteLevel``, ``TemplateProcessing``, ``RobertaProcessing``,
  ``BertProcessing`` (or a ``Sequence`` of them): its BOS/EOS ids, used by
  ``encode(..., add_special_tokens=True)``;
* decoder: ``ByteLevel``. ``truncation`` and ``padding`` are ignored.

The result is a :class:`VocabData` whose ``pipeline`` holds what a single split
pattern cannot express. A ``Split`` keeps the text its regex does not match (HF's
semantics), where a plain pattern leaves it out (tiktoken's); so a file with just
``Split(Isolated)`` + ``ByteLevel`` needs no pipeline only when its pattern matches all
text (the built-in and open-model patterns, on their scanners), as with GPT-2's
``ByteLevel`` or ``Split(Removed, invert=True)`` + ``ByteLevel``; other patterns keep the
``Split`` step.

Written: a BPE model (vocab and merges in GPT-2 byte-to-unicode text, ``ignore_merges``
so a piece that is a whole token stays one token, as in tiktoken; a merge list and its
``ignore_merges`` as read, for a tokenizer that merges by one), the pipeline's
normalizer and pre-tokenizer (without one: ``Sequence[Split(Regex(pattern), Isolated),
ByteLevel(use_regex=False)]``, or ``Split(..., Removed, invert=True)`` for a pattern that
does not match all text, which HF then splits as fastllm does), a ByteLevel decoder, the special and added tokens as
``added_tokens``, and a ``TemplateProcessing`` post-processor for BOS/EOS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastllm import _core
from fastllm._core import pattern_matches_all_text
from fastllm.files import write_bytes_atomic
from fastllm.tokenizer.formats import collector_paused
from fastllm.tokenizer.formats.gpt2_vocab import (
    bytes_to_text,
    merge_rule,
    text_to_bytes,
    tokens_from_text_vocab,
)
from fastllm.tokenizer.formats.oniguruma import RegexDialectError, from_oniguruma, to_oniguruma
from fastllm.tokenizer.pipeline import AddedToken, ByteLevel, Digits, Pipeline, Split
from fastllm.tokenizer.vocab import VocabData, derive_merges

__all__ = ["hf_json_dict", "parse_hf_json", "read_hf_json", "to_oniguruma", "from_oniguruma", "write_hf_json"]

#: The pattern name that HF's ``ByteLevel(use_regex=True)`` pre-tokenizer stands for.
GPT2_PATTERN_NAME = "gpt2"

# HF's SplitDelimiterBehavior names <-> fastllm's.
_BEHAVIOR_FROM_HF = {
    "Removed": "removed",
    "Isolated": "isolated",
    "MergedWithPrevious": "merged_with_previous",
    "MergedWithNext": "merged_with_next",
    "Contiguous": "contiguous",
}
_BEHAVIOR_TO_HF = {ours: theirs for theirs, ours in _BEHAVIOR_FROM_HF.items()}
_PATTERN_ALIASES = {"r50k": "gpt2", "r50k_base": "gpt2", "cl100k_base": "cl100k", "o200k_base": "o200k"}


# ----- writing ---------------------------------------------------------------------------


def hf_json_dict(vocab: VocabData, pattern_regex: str, builtin_patterns: dict[str, str] | None = None) -> dict:
    """The ``tokenizer.json`` content for ``vocab`` (``pattern_regex``: the split regex itself;
    ``builtin_patterns``: name -> regex, to resolve pattern names in pipeline steps)."""
    pipeline = vocab.pipeline or Pipeline()
    builtin_patterns = builtin_patterns or {}
    pairs = derive_merges(vocab.tokens) if vocab.merges is None else vocab.merges
    merges = [[bytes_to_text(left), bytes_to_text(right)] for left, right in pairs]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_entries(vocab, pipeline),
        "normalizer": {"type": "NFC"} if pipeline.normalizer == "nfc" else None,
        "pre_tokenizer": _pre_tokenizer_dict(pipeline, pattern_regex, builtin_patterns),
        "post_processor": _post_processor_dict(vocab, pipeline),
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            # Rank-based BPE emits a piece that is a token as that token, as this asks.
            "ignore_merges": vocab.ignore_merges if vocab.merges is not None else True,
            "vocab": _model_vocab(vocab, pipeline),
            "merges": merges,
        },
    }


def _added_entries(vocab: VocabData, pipeline: Pipeline) -> list[dict]:
    described = {token.content: token for token in pipeline.added_tokens}
    tokens = list(pipeline.added_tokens) + [
        AddedToken(text, token_id, special=True) for text, token_id in vocab.special_tokens.items() if text not in described
    ]
    return [
        {
            "id": token.id,
            "content": token.content,
            "single_word": token.single_word,
            "lstrip": token.lstrip,
            "rstrip": token.rstrip,
            "normalized": token.normalized,
            "special": token.special,
        }
        for token in sorted(tokens, key=lambda t: t.id)
    ]


def _model_vocab(vocab: VocabData, pipeline: Pipeline) -> dict[str, int]:
    """Token text -> id, special and added tokens included (as GPT-2's file has ``<|endoftext|>``):
    ``tokenizers`` only keeps an added token's id when the model vocabulary has it,
    and renumbers it otherwise, e.g. when ids have a gap below the specials."""
    token_of_id = _mergeable_by_id(vocab)
    entries = {bytes_to_text(token): token_id for token_id, token in token_of_id.items()}
    added = dict(vocab.special_tokens)
    added.update({t.content: t.id for t in pipeline.added_tokens if not t.special})
    for text, token_id in added.items():
        if token_id in token_of_id:
            if entries.get(text) != token_id:
                raise ValueError(
                    f"added token {text!r} has the id {token_id} of a mergeable token whose tokenizer.json text is "
                    f"{bytes_to_text(token_of_id[token_id])!r}; tokenizers would give it another id"
                )
            continue
        if text in entries:
            raise ValueError(
                f"special token {text!r} reads like the byte-level text of mergeable token {entries[text]}; "
                "tokenizer.json cannot hold both"
            )
        entries[text] = token_id
    return entries


def _mergeable_by_id(vocab: VocabData) -> dict[int, bytes]:
    return dict(zip(range(len(vocab.tokens)) if vocab.ids is None else vocab.ids, vocab.tokens))


def _pre_tokenizer_dict(pipeline: Pipeline, pattern_regex: str, builtin_patterns: dict[str, str]) -> dict:
    # The plain pattern in HF's terms (see _single_pattern): isolated where it matches all
    # text, else its inverted matches removed, so that HF leaves out what fastllm leaves out.
    plain = Split(pattern_regex) if pattern_matches_all_text(pattern_regex) else Split(pattern_regex, "removed", True)
    steps = list(pipeline.steps) or [plain]
    if not isinstance(steps[-1], ByteLevel):
        steps.append(ByteLevel())
    if len(steps) == 1:
        return _step_dict(steps[0], builtin_patterns)
    return {"type": "Sequence", "pretokenizers": [_step_dict(step, builtin_patterns) for step in steps]}


def _step_dict(step, builtin_patterns: dict[str, str]) -> dict:
    if isinstance(step, Split):
        regex = builtin_patterns.get(_PATTERN_ALIASES.get(step.pattern, step.pattern), step.pattern)
        return {
            "type": "Split",
            "pattern": {"Regex": to_oniguruma(regex)},
            "behavior": _BEHAVIOR_TO_HF[step.behavior],
            "invert": step.invert,
        }
    if isinstance(step, Digits):
        return {"type": "Digits", "individual_digits": step.individual}
    return {"type": "ByteLevel", "add_prefix_space": step.add_prefix_space, "trim_offsets": True, "use_regex": step.use_regex}


def _post_processor_dict(vocab: VocabData, pipeline: Pipeline) -> dict:
    if not pipeline.bos_ids and not pipeline.eos_ids:
        return {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    names = {token_id: text for text, token_id in vocab.special_tokens.items()}
    names.update({t.id: t.content for t in pipeline.added_tokens})
    token_of_id = _mergeable_by_id(vocab)

    def name(token_id: int) -> str:
        if token_id in names:
            return names[token_id]
        if token_id in token_of_id:
            return bytes_to_text(token_of_id[token_id])
        raise ValueError(f"BOS/EOS id {token_id} is not a token of this vocabulary")

    def template(type_id: int, sequence: str) -> list[dict]:
        return (
            [{"SpecialToken": {"id": name(i), "type_id": type_id}} for i in pipeline.bos_ids]
            + [{"Sequence": {"id": sequence, "type_id": type_id}}]
            + [{"SpecialToken": {"id": name(i), "type_id": type_id}} for i in pipeline.eos_ids]
        )

    ids = sorted(set(pipeline.bos_ids + pipeline.eos_ids))
    return {
        "type": "TemplateProcessing",
        "single": template(0, "A"),
        "pair": template(0, "A") + template(1, "B"),
        "special_tokens": {name(i): {"id": name(i), "ids": [i], "tokens": [name(i)]} for i in ids},
    }


def write_hf_json(
    path: str | os.PathLike, vocab: VocabData, pattern_regex: str, builtin_patterns: dict[str, str] | None = None
) -> Path:
    """Writes ``tokenizer.json`` for ``vocab`` atomically; see :func:`hf_json_dict`."""
    with collector_paused():
        text = json.dumps(hf_json_dict(vocab, pattern_regex, builtin_patterns), ensure_ascii=False)
    return write_bytes_atomic(path, text.encode("utf-8"))


# ----- reading ---------------------------------------------------------------------------


class _NotPlain(Exception):
    """The vocabulary of a file split in Rust is not the common case: read it all in Python."""


def read_hf_json(path: str | os.PathLike, known_patterns: dict[str, str] | None = None) -> VocabData:
    """Reads a byte-level BPE ``tokenizer.json``; see :func:`parse_hf_json`.

    The model's vocab and merges (nearly all of a large file) are parsed in Rust where
    nothing in the file is unusual, the other members by Python's ``json`` from their own
    text; any other file is parsed whole by Python's ``json``, so errors read the same."""
    source = str(path)
    data = Path(path).read_bytes()
    with collector_paused():
        document = _split_document(data)
        if document is not None:
            try:
                return parse_hf_json(document, source, known_patterns)
            except _NotPlain:
                pass
        try:
            obj = json.loads(data)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{source}: not UTF-8 text ({exc})") from None
        except (ValueError, RecursionError) as exc:  # also: an int of too many digits, nesting too deep
            raise ValueError(f"{source}: not valid JSON: {exc}") from None
        return parse_hf_json(obj, source, known_patterns)


def _split_document(data: bytes) -> dict | None:
    """The document of the ``tokenizer.json`` bytes ``data`` with its model's vocab and merges
    split out in Rust (as an ``HfModel`` in ``model.vocab``), or None where the split refuses the
    file or Python's json refuses one of the other members (an int of thousands of digits): the
    whole-file parse then reads it and names what is wrong."""
    split = _core.split_hf_json(data)
    if split is None:
        return None
    members, model_members, model = split
    try:
        document = {name: json.loads(text) for name, text in members}
        document["model"] = {name: json.loads(text) for name, text in model_members} | {"vocab": model}
    except (ValueError, RecursionError):
        return None
    return document


def parse_hf_json(obj: object, source: str = "tokenizer.json", known_patterns: dict[str, str] | None = None) -> VocabData:
    """The vocabulary (and pipeline) of a parsed ``tokenizer.json``.

    ``known_patterns`` maps built-in pattern names to their regex; a Split regex
    equal to one of them (in either spelling) is given by name, so that the core
    runs it on its scanner. Raises ValueError naming ``source`` for anything fastllm
    cannot reproduce exactly (see the module).
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise ValueError(f"{source}: not a tokenizer.json (no 'model' object)")
    model = obj["model"]
    _check_model(model, source)
    normalizer = _normalizer_of(obj.get("normalizer"), source)
    steps = _steps_of(obj.get("pre_tokenizer"), source, known_patterns or {})
    _check_decoder(obj.get("decoder"), source)
    vocab = model.get("vocab")
    # An HfModel: vocab and merges split out in Rust by read_hf_json.
    split = isinstance(vocab, _core.HfModel)
    if not (split or isinstance(vocab, dict)) or not vocab:
        raise ValueError(f"{source}: model.vocab is missing or empty")
    added = _added_tokens_of(obj.get("added_tokens") or [], vocab, source)
    specials = {token.content: token.id for token in added if token.special}
    merges = model.get("merges") or []
    ignore_merges = bool(model.get("ignore_merges", False))
    # The core reads a file with nothing unusual in it (rust/src/hf_vocab.rs), as the
    # Python below would; anything else goes to the Python, which says what is wrong.
    added_items = [(t.content, t.id, t.special) for t in added]
    if split:
        plain = _core.read_hf_model_plain(vocab, added_items, not ignore_merges)
    else:
        plain = _core.read_hf_vocab_plain(vocab, merges, added_items, not ignore_merges)
    ids = None
    # (Its mergeable ids are 0..n-1: specials among them are the Python reader's to place.)
    if plain is None or any(i < len(plain[0]) - 1 for i in specials.values()):
        if split:
            raise _NotPlain
        tokens, ids, listed = _mergeable_tokens(vocab, _merge_pairs(merges, source), added, specials, ignore_merges, source)
    else:
        tokens, listed = plain
    bos_ids, eos_ids = _template_of(obj.get("post_processor"), source)
    pattern, steps = _single_pattern(steps)
    described = _described_added_tokens(added, normalizer)
    pipeline = Pipeline(normalizer, tuple(steps), tuple(described), bos_ids, eos_ids)
    pipeline = pipeline if pipeline != Pipeline() else None
    if listed is not None:
        return VocabData(tokens, specials, pattern, pipeline, ids, listed, ignore_merges)
    return VocabData(tokens, specials, pattern, pipeline, ids)


def _mergeable_tokens(
    vocab: dict, merges: list[tuple[str, str]], added: list[AddedToken], specials: dict[str, int], ignore_merges: bool, source: str
) -> tuple[list[bytes], list[int] | None, list[tuple[bytes, bytes]] | None]:
    """The mergeable tokens by rank, their ids (None: 0..n-1) and, where rank-based BPE
    would not merge as the merges do, the merge list to merge by (else None); every entry
    and merge checked (ValueError naming ``source`` and what is wrong)."""
    # A non-special added token is a mergeable token too when BPE can make it (a single
    # byte, or built by a merge), as "ab" would be; special ones never are.
    built = {left + right for left, right in merges}
    not_mergeable = set(specials.values()) | {
        t.id for t in added if not (_is_byte_level(t.content) and (len(t.content) == 1 or t.content in built))
    }
    tokens, ids = tokens_from_text_vocab(vocab, not_mergeable, source)
    # Merges are checked on the token texts: the text map is one character per byte.
    rank_of_text = {text: token_id for text, token_id in vocab.items() if token_id not in not_mergeable}
    return merge_rule(tokens, ids, rank_of_text, merges, ignore_merges, source)


def _check_model(model: dict, source: str) -> None:
    kind = model.get("type", "BPE")
    if kind != "BPE":
        raise ValueError(f"{source}: model type {kind!r} is not supported (only byte-level BPE)")
    if model.get("byte_fallback"):
        raise ValueError(f"{source}: BPE with byte_fallback (SentencePiece-style) is not supported (only byte-level BPE)")
    if model.get("dropout"):
        raise ValueError(f"{source}: BPE dropout={model['dropout']!r} is not supported (encoding would be random)")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise ValueError(f"{source}: BPE option {key}={model[key]!r} is not supported")


def _normalizer_of(normalizer: object, source: str) -> str | None:
    """None or "nfc" for a normalizer made of nothing but NFC and empty Sequences."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if node is None:
            return
        kind = node.get("type") if isinstance(node, dict) else None
        if kind == "Sequence" and isinstance(node.get("normalizers"), list):
            for child in node["normalizers"]:
                walk(child)
        elif kind == "NFC":
            found.add("nfc")
        else:
            raise ValueError(f"{source}: normalizer {kind or node!r} is not supported (only none or NFC)")

    walk(normalizer)
    return "nfc" if found else None


def _steps_of(pre: object, source: str, known_patterns: dict[str, str]) -> list:
    """The pre-tokenizer as fastllm steps; the last must be ByteLevel (byte-level BPE)."""
    steps: list = []

    def walk(node: object) -> None:
        kind = node.get("type") if isinstance(node, dict) else None
        if kind == "Sequence" and isinstance(node.get("pretokenizers"), list):
            for child in node["pretokenizers"]:
                walk(child)
        elif kind == "Split":
            steps.append(_split_of(node, source, known_patterns))
        elif kind == "Digits":
            steps.append(Digits(bool(node.get("individual_digits", False))))
        elif kind == "ByteLevel":
            steps.append(ByteLevel(bool(node.get("add_prefix_space", True)), bool(node.get("use_regex", True))))
        else:
            raise ValueError(
                f"{source}: pre-tokenizer {kind or node!r} is not supported "
                "(supported: Split, Digits, ByteLevel, and Sequences of them)"
            )

    walk(pre)
    if not steps or not isinstance(steps[-1], ByteLevel):
        raise ValueError(f"{source}: the pre-tokenizer does not end with ByteLevel, so the model is not byte-level BPE")
    if any(isinstance(step, ByteLevel) for step in steps[:-1]):
        raise ValueError(f"{source}: ByteLevel must be the last pre-tokenizer (later steps would see its byte characters)")
    return steps


def _split_of(node: dict, source: str, known_patterns: dict[str, str]) -> Split:
    pattern = node.get("pattern")
    raw_behavior = node.get("behavior")
    # Checked as a string first: a list or object there is not a key (TypeError in the lookup).
    behavior = _BEHAVIOR_FROM_HF.get(raw_behavior) if isinstance(raw_behavior, str) else None
    if behavior is None:
        raise ValueError(f"{source}: Split behavior {node.get('behavior')!r} is unknown")
    invert = bool(node.get("invert", False))
    if isinstance(pattern, dict) and isinstance(pattern.get("String"), str):
        return Split(_literal_regex(pattern["String"]), behavior, invert)
    if not isinstance(pattern, dict) or not isinstance(pattern.get("Regex"), str):
        raise ValueError(f"{source}: Split pattern {pattern!r} is neither {{'Regex': ...}} nor {{'String': ...}}")
    regex = pattern["Regex"]
    for name, known in known_patterns.items():
        if regex in (known, to_oniguruma(known)):
            return Split(name, behavior, invert)
    try:
        return Split(from_oniguruma(regex), behavior, invert)
    except RegexDialectError as exc:
        raise ValueError(f"{source}: {exc}") from None


def _literal_regex(text: str) -> str:
    """A regex that matches ``text`` literally (a Split's ``String`` pattern)."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$#&-~" else c for c in text)


def _check_decoder(decoder: object, source: str) -> None:
    nodes = decoder.get("decoders") if isinstance(decoder, dict) and decoder.get("type") == "Sequence" else [decoder]
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict) or nodes[0].get("type") != "ByteLevel":
        kind = decoder.get("type") if isinstance(decoder, dict) else decoder
        raise ValueError(f"{source}: decoder {kind!r} is not supported (byte-level BPE decodes with ByteLevel)")


def _is_byte_level(text: str) -> bool:
    try:
        text_to_bytes(text)
    except ValueError:
        return False
    return True


def _added_tokens_of(entries: list, vocab: dict, source: str) -> list[AddedToken]:
    """The added tokens, at the ids ``tokenizers`` gives them: the model vocabulary's id
    for a content it has, else the next id after the vocabulary, in file order."""
    if not isinstance(entries, list):
        raise ValueError(f"{source}: added_tokens must be a list, not {type(entries).__name__}")
    tokens: list[AddedToken] = []
    seen: set[str] = set()
    next_id = len(vocab)
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str) or not isinstance(entry.get("id"), int):
            raise ValueError(f"{source}: malformed added_tokens entry {entry!r}")
        content = entry["content"]
        if not content or content in seen:
            raise ValueError(f"{source}: added token {content!r} is empty or given twice")
        seen.add(content)
        if content in vocab:
            expected = vocab[content]
        else:
            expected, next_id = next_id, next_id + 1
        if entry["id"] != expected:
            raise ValueError(
                f"{source}: added token {content!r} has id {entry['id']}, but tokenizers gives it id {expected} "
                "(the model vocabulary's id for its content, else the next id after the vocabulary)"
            )
        flags = {key: entry.get(key, default) for key, default in _ADDED_DEFAULTS.items()}
        if not all(isinstance(value, bool) for value in flags.values()):
            raise ValueError(f"{source}: malformed added_tokens entry {entry!r}")
        tokens.append(AddedToken(content, expected, **flags))
    return tokens


# HF's AddedToken defaults.
_ADDED_DEFAULTS = {"special": False, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True}


def _template_of(post: object, source: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (BOS, EOS) ids the post-processor puts around a single sequence."""
    if post is None:
        return (), ()
    kind = post.get("type") if isinstance(post, dict) else None
    if kind == "ByteLevel":
        return (), ()
    if kind == "Sequence" and isinstance(post.get("processors"), list):
        found = [_template_of(child, source) for child in post["processors"]]
        adding = [pair for pair in found if pair != ((), ())]
        if len(adding) > 1:
            raise ValueError(f"{source}: a post-processor Sequence with several processors that add tokens is not supported")
        return adding[0] if adding else ((), ())
    if kind in ("RobertaProcessing", "BertProcessing"):
        try:
            (_, cls_id), (_, sep_id) = post["cls"], post["sep"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{source}: malformed {kind} post-processor") from None
        return (cls_id,), (sep_id,)
    if kind == "TemplateProcessing":
        return _template_ids(post, source)
    raise ValueError(
        f"{source}: post-processor {kind or post!r} is not supported "
        "(supported: ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing)"
    )


def _template_ids(post: dict, source: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    single, specials = post.get("single"), post.get("special_tokens") or {}
    before: list[int] = []
    after: list[int] = []
    sequences = 0
    for piece in single if isinstance(single, list) else [None]:
        if isinstance(piece, dict) and "Sequence" in piece:
            sequences += 1
        elif isinstance(piece, dict) and isinstance(piece.get("SpecialToken"), dict):
            name = piece["SpecialToken"].get("id")
            ids = specials.get(name, {}).get("ids") if isinstance(specials.get(name), dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise ValueError(f"{source}: TemplateProcessing special token {name!r} has no ids")
            (after if sequences else before).extend(ids)
        else:
            raise ValueError(f"{source}: malformed TemplateProcessing piece {piece!r}")
    if sequences != 1:
        raise ValueError(f"{source}: TemplateProcessing 'single' must hold the sequence exactly once")
    return tuple(before), tuple(after)


def _single_pattern(steps: list) -> tuple[str, list]:
    """(pattern, steps): steps that split exactly as one plain pattern does become the
    tokenizer's pattern with no steps (its fast path); otherwise the first Split's
    pattern (or GPT-2's) names the tokenizer's pattern and the steps stay.

    A plain pattern splits as tiktoken does (its matches; unmatched text left out), HF's
    ``Split(Isolated)`` keeps unmatched text as pieces: the two agree for a pattern that
    matches all text (the built-in and open-model patterns, which run on scanners), and
    ``Split(Removed, invert=True)`` is the plain pattern's own semantics for any pattern."""
    *rest, byte_level = steps
    if byte_level == ByteLevel(False, False) and len(rest) == 1:
        split = rest[0]
        if isinstance(split, Split) and split.behavior == "isolated" and not split.invert:
            if _matches_all_text(split.pattern):
                return split.pattern, []
        if isinstance(split, Split) and split.behavior == "removed" and split.invert:
            return split.pattern, []
    if byte_level == ByteLevel(False, True) and not rest:
        return GPT2_PATTERN_NAME, []
    first = next((step.pattern for step in steps if isinstance(step, Split)), GPT2_PATTERN_NAME)
    return first, steps


def _matches_all_text(pattern: str) -> bool:
    try:
        return pattern_matches_all_text(pattern)
    except ValueError:  # a regex that does not compile: the core names the file when building
        return False


def _described_added_tokens(added: list[AddedToken], normalizer: str | None) -> list[AddedToken]:
    """The added tokens the pipeline must describe: non-special ones, and special ones
    with flags. Without a normalizer, ``normalized`` only matters when some tokens
    have it and others not (they are found in two passes)."""
    if normalizer is None and len({t.normalized for t in added}) <= 1:
        added = [AddedToken(t.content, t.id, t.special, t.single_word, t.lstrip, t.rstrip, False) for t in added]
    return [
        t for t in added if not t.special or t.single_word or t.lstrip or t.rstrip or t.normalized
    ]


def _merge_pairs(merges: list, source: str) -> list[tuple[str, str]]:
    if not isinstance(merges, list):
        raise ValueError(f"{source}: model.merges must be a list, not {type(merges).__name__}")
    pairs = []
    for number, merge in enumerate(merges, start=1):
        if isinstance(merge, str):
            fields = merge.split(" ")
        elif isinstance(merge, list):
            fields = merge
        else:
            fields = []
        if len(fields) != 2 or not (isinstance(fields[0], str) and isinstance(fields[1], str)):
            raise ValueError(f"{source}: merge {number} is {merge!r}, expected 'A B' or [A, B]")
        pairs.append((fields[0], fields[1]))
    return pairs
