"""``fastllm.Tokenizer``: byte-level BPE with tiktoken's semantics, backed by the Rust core.

The heavy work (pre-tokenization, merging, decoding, batches on all cores)
happens in ``fastllm._core.CoreBPE`` with the GIL released; this class checks
arguments, applies tiktoken's special-token policy and reads/writes files.
A Tokenizer is immutable, safe to share between threads, and picklable.

The id lists the Rust core builds (``encode``, ``encode_ordinary``, the items of
the batch calls) are plain lists of ints, but left out of Python's cyclic
garbage collector (``gc.is_tracked`` is False), as CPython leaves out tuples of
ints: ints form no cycles, and the collector would otherwise walk every id of
every list it finds alive. Reference counting frees them as usual; only a cycle
made through such a list itself (a list appended to itself) would not be found.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import operator
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Union

from fastllm import _core
from fastllm.tokenizer.formats.fastllm_json import read_tokenizer_file, write_tokenizer_file
from fastllm.tokenizer.formats.hf_checkpoint import read_pretrained_vocab
from fastllm.tokenizer.formats.hf_json import read_hf_json, write_hf_json
from fastllm.tokenizer.formats.tiktoken_file import read_tiktoken, write_tiktoken
from fastllm.tokenizer.patterns import builtin_pattern_regexes
from fastllm.tokenizer.pipeline import Pipeline
from fastllm.tokenizer.training import train_ranks
from fastllm.tokenizer.unstable import encode_with_unstable as _encode_with_unstable
from fastllm.tokenizer.vocab import ENDOFTEXT, VocabData, rank_bpe_follows

if TYPE_CHECKING:
    import numpy as np

SpecialPolicy = Union[str, Iterable[str]]  # "all" or a collection of special token strings
_NO_SPECIALS: frozenset[str] = frozenset()  # the default allowed_special
_ALL = "all"  # the default disallowed_special (a call that leaves both as they are skips the policy work)
_ID_LIMIT = 2**32 - 1  # token ids are u32 in the core, and u32::MAX is not an id


class Tokenizer:
    """A byte-level BPE tokenizer.

    ``mergeable_ranks`` is either the list of token bytes in rank order
    (``tokens[rank]``; each id is its rank, or ``ids[rank]`` where ``ids`` is
    given) or a ``{bytes: rank}`` dict, whose ranks are the ids (gaps allowed,
    as in tiktoken); all 256 single bytes must be present. The rank orders the
    merges; ids may follow another order (RoBERTa's). ``special_tokens`` maps special token
    strings to ids no mergeable token has: above the ranks, or below and
    between them (HF's trainer puts special tokens first). ``pattern`` is a built-in
    split pattern name (``"gpt2"``, ``"cl100k"``, ``"o200k"``) or a regex.
    As in tiktoken, text a custom regex does not match is left out of the
    tokens; a regex the engine gives up on (too much backtracking) raises
    ValueError from the call that splits (encode, split, training).

    ``pipeline`` (:class:`~fastllm.tokenizer.pipeline.Pipeline`, what a HF
    ``tokenizer.json`` brings: a normalizer, several split steps, added tokens,
    BOS/EOS) makes the tokenizer encode as HF ``tokenizers`` does; its ``Split``
    steps keep the text their regex does not match, as HF's do. With pipeline
    steps, ``pattern`` only names the first split (what :attr:`pattern` reports).

    ``merges`` (``(left, right)`` token bytes, earliest first) makes it merge as HF
    ``tokenizers`` does, by that list, instead of by rank: only listed pairs join, the
    earliest-listed first. A ``tokenizer.json`` whose merges cannot be read as ranks
    (several merges for one token, as in files converted from tiktoken ranks) loads
    so. ``ignore_merges`` (with ``merges``) emits a piece that is a token as that token.
    A list that rank-based BPE follows exactly (the one :meth:`to_hf_json` writes for ranks)
    gives the same ids by rank, so it is not kept: :meth:`merges` is None then.
    """

    def __init__(
        self,
        mergeable_ranks: Sequence[bytes] | Mapping[bytes, int],
        special_tokens: Mapping[str, int] | None = None,
        pattern: str = "cl100k",
        *,
        name: str | None = None,
        pipeline: Pipeline | None = None,
        ids: Sequence[int] | None = None,
        merges: Sequence[tuple[bytes, bytes]] | None = None,
        ignore_merges: bool = True,
    ) -> None:
        tokens, ids = _rank_list(mergeable_ranks, ids)
        merges = _merge_list(merges)
        if not isinstance(ignore_merges, bool):
            raise TypeError(f"ignore_merges must be True or False, not {ignore_merges!r}")
        if merges is not None and rank_bpe_follows(tokens, merges, ignore_merges):
            merges = None  # the same ids by rank, on the fast path
        specials = _special_dict(special_tokens)
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a pattern name or a regex string, not {type(pattern).__name__}")
        if not pattern:  # it would match only empty pieces: every text would encode to []
            raise ValueError("pattern must be a pattern name or a non-empty regex, not ''")
        if name is not None and not isinstance(name, str):
            raise TypeError("name must be a string or None")
        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise TypeError(f"pipeline must be a fastllm.tokenizer.pipeline.Pipeline or None, not {type(pipeline).__name__}")
        spec = pipeline.core_spec() if pipeline is not None and pipeline.changes_encoding else None
        self._core = _core.CoreBPE(tokens, specials, pattern, spec, ids, merges, ignore_merges)
        self._merges = merges
        self._ignore_merges = ignore_merges if merges is not None else True
        # None where every id is its rank (the core maps nothing then).
        self._ids = self._core.mergeable_ids()
        self._n_mergeable = len(tokens)
        self._name = name
        self._specials = dict(specials)
        self._special_set = frozenset(specials)
        self._pipeline = pipeline
        # What add_special_tokens=True puts around the ids.
        self._bos = list(pipeline.bos_ids) if pipeline else []
        self._eos = list(pipeline.eos_ids) if pipeline else []
        unknown = [i for i in self._bos + self._eos if not 0 <= i < self._core.n_vocab]
        if unknown:
            raise ValueError(f"BOS/EOS ids {unknown} are not ids of this vocabulary (n_vocab {self._core.n_vocab})")

    # ----- construction from files and by training -------------------------------------

    @classmethod
    def _from_vocab(cls, vocab: VocabData, source: str | os.PathLike, name: str | None = None) -> Tokenizer:
        """The tokenizer of ``vocab``, read from ``source``: what the file holds can still be
        refused here (a missing byte, a bad pattern, a special id among the ranks), so the
        error names the file."""
        try:
            return cls(
                vocab.tokens,
                vocab.special_tokens,
                vocab.pattern,
                name=name,
                pipeline=vocab.pipeline,
                ids=vocab.ids,
                merges=vocab.merges,
                ignore_merges=vocab.ignore_merges,
            )
        except (ValueError, TypeError) as exc:
            raise (TypeError if isinstance(exc, TypeError) else ValueError)(f"{os.fspath(source)}: {exc}") from None

    @classmethod
    def train(
        cls,
        source: Iterable[str] | Sequence[str | os.PathLike],
        vocab_size: int,
        pattern: str = "cl100k",
        special_tokens: Sequence[str] = (),
        min_frequency: int = 2,
        show_progress: bool | None = None,
    ) -> Tokenizer:
        """Trains a vocabulary of ``vocab_size`` ids (special tokens included).

        ``source`` is a list of file paths or an iterable of strings. The special
        tokens get the ids right after the mergeable ranks, in the given order.
        """
        if isinstance(special_tokens, str):
            raise TypeError("special_tokens must be a sequence of strings, not one string")
        special_tokens = list(special_tokens)
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens has duplicates: {special_tokens}")
        tokens = train_ranks(
            source,
            vocab_size,
            pattern=pattern,
            special_tokens=special_tokens,
            min_frequency=min_frequency,
            show_progress=show_progress,
        )
        specials = {text: len(tokens) + i for i, text in enumerate(special_tokens)}
        return cls(tokens, specials, pattern)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Reads a file written by :meth:`save`."""
        return cls._from_vocab(read_tokenizer_file(path), path)

    def save(self, path: str | os.PathLike) -> None:
        """Writes this tokenizer (ranks, pattern, special tokens) to one JSON file."""
        write_tokenizer_file(path, self._vocab())

    @classmethod
    def from_tiktoken(
        cls,
        path: str | os.PathLike,
        pattern: str,
        special_tokens: Mapping[str, int] | None = None,
        *,
        name: str | None = None,
    ) -> Tokenizer:
        """Reads a tiktoken ``.tiktoken`` file; the format holds only the ranks, so the
        split pattern (name or regex) and special tokens are given here."""
        tokens, ids = read_tiktoken(path)
        return cls._from_vocab(VocabData(tokens, special_tokens, pattern, ids=ids), path, name)

    def save_tiktoken(self, path: str | os.PathLike) -> None:
        """Writes the ranks as a tiktoken ``.tiktoken`` file (pattern and specials are not part of it)."""
        if self._merges is not None:
            raise ValueError(
                "this tokenizer merges by its merge list (HF tokenizers' rule, from a tokenizer.json whose merges "
                "are not ranks); a .tiktoken file holds ranks only and would encode differently"
            )
        write_tiktoken(path, self._core.mergeable_tokens(), self._ids)

    @classmethod
    def from_hf_json(cls, path: str | os.PathLike) -> Tokenizer:
        """Reads a byte-level BPE HF ``tokenizer.json``, encoding as ``tokenizers`` does
        (see :mod:`fastllm.tokenizer.formats.hf_json` for what is supported); what a
        split pattern cannot express becomes the tokenizer's :attr:`pipeline`.

        ``tokenizers`` always matches special tokens: ``encode(text,
        allowed_special="all", add_special_tokens=True)`` gives its ids."""
        return cls._from_vocab(read_hf_json(path, builtin_pattern_regexes()), path)

    def to_hf_json(self, path: str | os.PathLike) -> None:
        """Writes a HF ``tokenizer.json`` that ``tokenizers.Tokenizer.from_file`` (and transformers'
        ``PreTrainedTokenizerFast``) encodes identically (special tokens are always matched
        there, as with ``allowed_special="all"``; BOS/EOS with ``add_special_tokens=True``)."""
        write_hf_json(path, self._vocab(), self._core.pattern_regex, builtin_pattern_regexes())

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> Tokenizer:
        """Reads the tokenizer of a HF checkpoint directory: ``tokenizer.json``, or
        GPT-2's ``vocab.json`` + ``merges.txt`` (``<|endoftext|>`` as the special token)."""
        return cls._from_vocab(read_pretrained_vocab(path, builtin_pattern_regexes()), path)

    def with_special_tokens(self, extra: Mapping[str, int] | Iterable[str]) -> Tokenizer:
        """A new tokenizer with more special tokens.

        A list gets ids after the current largest id, in order; a mapping gives
        the ids itself. Names that already exist raise ValueError.
        """
        if isinstance(extra, str):
            raise TypeError("extra special tokens must be a list of strings or a {string: id} mapping, not one string")
        if isinstance(extra, Mapping):
            added = _special_dict(extra)
        else:
            names = list(extra)
            if not all(isinstance(n, str) for n in names):
                raise TypeError("extra special tokens must be strings")
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate special tokens in {names}")
            added = {text: self.n_vocab + i for i, text in enumerate(names)}
        clash = sorted(set(added) & self._special_set)
        if clash:
            raise ValueError(f"special tokens already present: {clash}")
        return Tokenizer(
            self._core.mergeable_tokens(),
            {**self._specials, **added},
            self._core.pattern,
            name=self._name,
            pipeline=self._pipeline,
            ids=self._ids,
            merges=self._merges,
            ignore_merges=self._ignore_merges,
        )

    # ----- encoding ------------------------------------------------------------------------

    def encode(
        self,
        text: str,
        *,
        allowed_special: SpecialPolicy = _NO_SPECIALS,
        disallowed_special: SpecialPolicy = _ALL,
        add_special_tokens: bool = False,
    ) -> list[int]:
        """Token ids of ``text`` with tiktoken's special-token policy.

        Special tokens in ``allowed_special`` (``"all"`` or a set) become their
        id; one in ``disallowed_special`` (default: every special not allowed)
        raises ValueError; the rest is encoded as ordinary text.
        ``add_special_tokens=True`` puts the pipeline's BOS/EOS ids around the
        result, as a HF ``tokenizer.json`` post-processor does (a tokenizer
        without a pipeline has none: the ids are unchanged).
        """
        if allowed_special is _NO_SPECIALS and disallowed_special is _ALL and text.__class__ is str:
            # The defaults, as most calls are: no per-call policy work (a short text's encode
            # was mostly this method's own overhead).
            ids = _surrogate_safe(self._core.encode, text)
        else:
            _check_text(text)
            allowed, disallowed = self._special_policy(allowed_special, disallowed_special)
            ids = _surrogate_safe(self._core.encode, text, allowed, disallowed)
        return self._with_bos_eos(ids) if add_special_tokens else ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, treating special token strings as ordinary text."""
        _check_text(text)
        return _surrogate_safe(self._core.encode_ordinary, text)

    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        num_threads: int | None = None,
        allowed_special: SpecialPolicy = _NO_SPECIALS,
        disallowed_special: SpecialPolicy = _ALL,
        add_special_tokens: bool = False,
    ) -> list[list[int]]:
        """:meth:`encode` of each text, in parallel (``num_threads=None``: all cores)."""
        texts = _text_list(texts)
        allowed, disallowed = self._special_policy(allowed_special, disallowed_special)
        batch = _surrogate_safe(self._core.encode_batch, texts, allowed, disallowed, _check_threads(num_threads))
        return [self._with_bos_eos(ids) for ids in batch] if add_special_tokens else batch

    def encode_ordinary_batch(self, texts: Iterable[str], *, num_threads: int | None = None) -> list[list[int]]:
        """:meth:`encode_ordinary` of each text, in parallel (``num_threads=None``: all cores)."""
        return _surrogate_safe(self._core.encode_ordinary_batch, _text_list(texts), _check_threads(num_threads))

    def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: SpecialPolicy = _NO_SPECIALS,
        disallowed_special: SpecialPolicy = _ALL,
        add_special_tokens: bool = False,
    ) -> np.ndarray:
        """:meth:`encode` as a read-only ``uint32`` numpy array (no Python int per token)."""
        import numpy as np

        _check_text(text)
        allowed, disallowed = self._special_policy(allowed_special, disallowed_special)
        ids = _u32_array(_surrogate_safe(self._core.encode_to_u32_bytes, text, allowed, disallowed))
        if add_special_tokens and (self._bos or self._eos):
            ids = np.concatenate([np.array(self._bos, np.uint32), ids, np.array(self._eos, np.uint32)])
            ids.flags.writeable = False
        return ids

    def encode_batch_to_numpy(
        self,
        texts: Iterable[str],
        *,
        num_threads: int | None = None,
        allowed_special: SpecialPolicy = _NO_SPECIALS,
        disallowed_special: SpecialPolicy = _ALL,
        add_special_tokens: bool = False,
    ) -> FlatIds:
        """:meth:`encode_batch` as one flat read-only ``uint32`` array of every text's ids in
        order, and their ``int64`` offsets: text ``i``'s ids are ``ids[offsets[i]:offsets[i + 1]]``.
        No Python object per text or per token is made, so for many texts this is much
        faster than the lists (and what a dataset's shards want)."""
        texts = _text_list(texts)
        allowed, disallowed = self._special_policy(allowed_special, disallowed_special)
        flat = _flat_ids(_surrogate_safe(self._core.encode_batch_to_u32_bytes, texts, allowed, disallowed,
                                         _check_threads(num_threads)))
        return flat.with_around(self._bos, self._eos) if add_special_tokens else flat

    def encode_ordinary_batch_to_numpy(self, texts: Iterable[str], *, num_threads: int | None = None) -> FlatIds:
        """:meth:`encode_ordinary_batch` as :meth:`encode_batch_to_numpy` returns it."""
        return _flat_ids(_surrogate_safe(self._core.encode_ordinary_batch_to_u32_bytes, _text_list(texts),
                                         _check_threads(num_threads)))

    def encode_ordinary_to_numpy(self, text: str) -> np.ndarray:
        """:meth:`encode_ordinary` as a read-only ``uint32`` numpy array: special token strings
        are ordinary text, and the text is not searched for them (the fastest way to ids)."""
        _check_text(text)
        return _u32_array(_surrogate_safe(self._core.encode_ordinary_to_u32_bytes, text))

    def split(self, text: str) -> list[str]:
        """The pieces the split pattern (or the pipeline's normalizer and steps) cuts
        ``text`` into (special and added tokens not handled)."""
        _check_text(text)
        return _surrogate_safe(self._core.split, text)

    # ----- decoding ------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of the tokens ``ids``; unknown ids raise :class:`UnknownTokenError`."""
        return _decoded(self._core.decode_bytes, ids)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """The text of the tokens ``ids``. ``errors`` is a codec error handler:
        ``"replace"`` (default) puts U+FFFD for invalid UTF-8, ``"strict"`` raises."""
        if not (errors.__class__ is str and errors in _BUILTIN_ERROR_HANDLERS):
            try:
                codecs.lookup_error(errors)
            except (LookupError, TypeError):
                raise ValueError(f"unknown errors handler {errors!r} (use 'replace', 'strict', 'ignore', ...)") from None
        return _decoded(self._core.decode, ids, errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token id (special tokens included)."""
        try:  # a token id the core reads as it is (an int that is a token): no checks in Python
            return self._core.decode_single_token_bytes(token)
        except (TypeError, ValueError, OverflowError):  # said again with fastllm's messages
            return _decoded_token(self._core.decode_single_token_bytes, _token_id(token))

    def decode_tokens_bytes(self, ids: Iterable[int]) -> list[bytes]:
        """The bytes of each token of ``ids``, one entry per token."""
        return _decoded(self._core.decode_tokens_bytes, ids if ids.__class__ is list else _id_list(ids))

    def incremental_decoder(self) -> IncrementalDecoder:
        """A decoder for streamed ids that only ever emits complete characters."""
        return IncrementalDecoder(self)

    # ----- properties ----------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def n_vocab(self) -> int:
        """The largest id plus one."""
        return self._core.n_vocab

    @property
    def max_token_value(self) -> int:
        return self._core.n_vocab - 1

    @property
    def eot_token(self) -> int | None:
        """The id of ``<|endoftext|>``, or None when the vocabulary has no such special token."""
        return self._specials.get(ENDOFTEXT)

    @functools.cached_property
    def special_tokens_set(self) -> frozenset[str]:
        # Cached as tiktoken does: after the first call, a plain attribute read.
        return self._special_set

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string -> id (a copy)."""
        return dict(self._specials)

    @property
    def pattern(self) -> str:
        """The split pattern: a built-in name, or the custom regex (with pipeline steps: the first split's)."""
        return self._core.pattern

    @property
    def pipeline(self) -> Pipeline | None:
        """What a HF ``tokenizer.json`` added to the split pattern (None: nothing)."""
        return self._pipeline

    @property
    def pattern_regex(self) -> str:
        """The split pattern's regex."""
        return self._core.pattern_regex

    def mergeable_tokens(self) -> list[bytes]:
        """The token bytes in rank order (``tokens[rank]``)."""
        return self._core.mergeable_tokens()

    def mergeable_ids(self) -> list[int]:
        """The id of each mergeable token, in rank order (``ids[rank]``): the ranks
        themselves, unless the vocabulary numbers its tokens otherwise (special tokens
        first, as GPT-NeoX's ``tokenizer.json``, or ranks with gaps)."""
        return list(range(self._n_mergeable)) if self._ids is None else list(self._ids)

    def merges(self) -> list[tuple[bytes, bytes]] | None:
        """The merge list this tokenizer merges by, HF ``tokenizers``' way (``(left, right)``
        token bytes, earliest first), or None where it merges by rank, tiktoken's way (the
        usual case; a ``tokenizer.json`` whose merges cannot be read as ranks has a list)."""
        return None if self._merges is None else list(self._merges)

    @property
    def ignore_merges(self) -> bool:
        """Whether a piece that is a whole token encodes as that token (``tokenizer.json``'s
        ``ignore_merges``); always true when merging by rank, as tiktoken does."""
        return self._ignore_merges

    # ----- the rest of tiktoken's Encoding API -------------------------------------------

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of one whole token given as text or bytes, special tokens included;
        KeyError (holding the bytes) when it is no token."""
        if text_or_bytes.__class__ is bytes:
            piece = text_or_bytes
        elif isinstance(text_or_bytes, str):
            piece = text_or_bytes.encode("utf-8", "surrogatepass")
        elif isinstance(text_or_bytes, (bytes, bytearray)):
            piece = bytes(text_or_bytes)
        else:
            raise TypeError(f"encode_single_token takes str or bytes, not {type(text_or_bytes).__name__}")
        # The core's own table: no Python dict of every token built for one lookup.
        rank = self._core.mergeable_rank(piece)
        if rank is not None:
            return rank
        try:
            special = self._specials.get(piece.decode("utf-8"))
        except UnicodeDecodeError:
            special = None
        if special is None:
            raise KeyError(piece)
        return special

    def encode_with_unstable(
        self,
        text: str,
        *,
        allowed_special: SpecialPolicy = _NO_SPECIALS,
        disallowed_special: SpecialPolicy = _ALL,
    ) -> tuple[list[int], list[list[int]]]:
        """``(stable, completions)``: the tokens of ``text`` that more text cannot change, and
        every token sequence the rest may become (sorted), as tiktoken defines them (see
        :mod:`fastllm.tokenizer.unstable`). Special tokens as :meth:`encode`."""
        tokens = self.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        return _encode_with_unstable(self, tokens)

    def decode_with_offsets(self, ids: Iterable[int]) -> tuple[str, list[int]]:
        """The text of ``ids`` and, per token, the index of the character holding its first
        byte (a token starting inside a character points at that character). The bytes must
        be valid UTF-8 (UnicodeDecodeError otherwise), as in tiktoken."""
        pieces = self.decode_tokens_bytes(ids)
        offsets, chars = [], 0
        for piece in pieces:
            # continuation bytes (0b10xxxxxx) belong to the character started before them
            starts_inside = bool(piece) and 0x80 <= piece[0] < 0xC0
            offsets.append(max(0, chars - starts_inside))
            chars += sum(1 for byte in piece if not 0x80 <= byte < 0xC0)
        return b"".join(pieces).decode("utf-8", "strict"), offsets

    def decode_batch(self, batch: Iterable[Iterable[int]], *, errors: str = "replace", num_threads: int = 8) -> list[str]:
        """:meth:`decode` of each id list (``num_threads`` is accepted for tiktoken's signature:
        decoding is a copy of bytes, run here one after the other)."""
        _check_threads(num_threads)
        return [self.decode(ids, errors) for ids in batch]

    def decode_bytes_batch(self, batch: Iterable[Iterable[int]], *, num_threads: int = 8) -> list[bytes]:
        """:meth:`decode_bytes` of each id list."""
        _check_threads(num_threads)
        return [self.decode_bytes(ids) for ids in batch]

    def token_byte_values(self) -> list[bytes]:
        """Every mergeable token's bytes, sorted (tiktoken's order; special tokens excluded)."""
        return self._core.token_byte_values()

    def is_special_token(self, token: int) -> bool:
        """Whether ``token`` is the id of a special token."""
        if token.__class__ is int:  # the usual argument: no checks to make
            return token in self._special_ids
        return _token_id(token) in self._special_ids

    @property
    def _pat_str(self) -> str:
        """The split regex, under tiktoken's attribute name (``Encoding(pat_str=enc._pat_str, ...)``)."""
        return self._core.pattern_regex

    @property
    def _mergeable_ranks(self) -> dict[bytes, int]:
        """Token bytes -> rank (a copy), under tiktoken's attribute name (tiktoken's ranks
        are the ids)."""
        return dict(zip(self._core.mergeable_tokens(), self.mergeable_ids()))

    @property
    def _special_tokens(self) -> dict[str, int]:
        """Special token -> id (a copy), under tiktoken's attribute name."""
        return dict(self._specials)

    @functools.cached_property
    def _special_ids(self) -> frozenset[int]:
        return frozenset(self._specials.values())

    # ----- pickling and display ------------------------------------------------------------

    def __reduce__(self):
        pipeline = self._pipeline.to_dict() if self._pipeline else None
        return (
            _rebuild,
            (
                self._core.mergeable_tokens(),
                self._specials,
                self._core.pattern,
                self._name,
                pipeline,
                self._ids,
                self._merges,
                self._ignore_merges,
            ),
        )

    def __repr__(self) -> str:
        label = f"{self._name!r}, " if self._name else ""
        pipeline = ", pipeline=..." if self._pipeline else ""
        return (
            f"Tokenizer({label}n_vocab={self.n_vocab}, pattern={_short(self.pattern)}, "
            f"special_tokens={len(self._specials)}{pipeline})"
        )

    # ----- helpers -------------------------------------------------------------------------

    def _vocab(self) -> VocabData:
        return VocabData(
            self._core.mergeable_tokens(),
            dict(self._specials),
            self._core.pattern,
            self._pipeline,
            self._ids,
            self._merges,
            self._ignore_merges,
        )

    def _with_bos_eos(self, ids: list[int]) -> list[int]:
        return [*self._bos, *ids, *self._eos] if self._bos or self._eos else ids

    def _special_policy(self, allowed: SpecialPolicy, disallowed: SpecialPolicy):
        """The (allowed, disallowed) arguments for the core, checked. "all" is passed on as
        it is (the core takes it as a flag) and a disallowed "all" as None (every special not
        allowed, tiktoken's default), so that the usual calls build no sets of names."""
        if allowed is _NO_SPECIALS:
            allowed_arg = None
        elif isinstance(allowed, str) and allowed == "all":
            allowed_arg = "all"
        else:
            allowed_arg = self._special_names(allowed, "allowed_special")
        if isinstance(disallowed, str) and disallowed == "all":
            return allowed_arg, None
        return allowed_arg, self._special_names(disallowed, "disallowed_special")

    def _special_names(self, names: Iterable[str], what: str) -> set[str]:
        if isinstance(names, (str, bytes)):
            raise TypeError(f"{what} must be 'all' or a set of special token strings, not the string {names!r}")
        try:
            result = set(names)
        except TypeError:
            raise TypeError(f"{what} must be 'all' or a set of special token strings") from None
        if not result <= self._special_set:
            unknown = sorted(str(n) for n in result - self._special_set)
            raise ValueError(f"{what}: {unknown} are not special tokens of this tokenizer (it has {sorted(self._special_set)})")
        return result


class IncrementalDecoder:
    """Decodes a stream of token ids, emitting only complete UTF-8 characters.

    The concatenation of everything ``add``/``add_many``/``flush`` return equals
    ``tokenizer.decode(all_ids)`` (``errors="replace"``).
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError("IncrementalDecoder needs a fastllm.Tokenizer")
        self._inner = tokenizer._core.incremental_decoder()

    def add(self, token_id: int) -> str:
        """Takes one id; returns the characters it completes (possibly "")."""
        return _ids_fit(self._inner.add, _token_id(token_id))

    def add_many(self, ids: Iterable[int]) -> str:
        """Takes several ids; returns the characters they complete."""
        return _ids_fit(self._inner.add_many, _id_list(ids))

    def flush(self) -> str:
        """Returns what is left, with an incomplete trailing character as U+FFFD, and starts over."""
        return self._inner.flush()

    def reset(self) -> None:
        """Drops any pending bytes."""
        self._inner.reset()


class UnknownTokenError(KeyError, ValueError):
    """A token id the vocabulary does not have: a KeyError as in tiktoken, and the ValueError
    fastllm documents."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _TokenizerIsEncoding(type):
    # every Tokenizer has tiktoken's Encoding API, so it counts as an Encoding
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tokenizer)

    def __subclasscheck__(cls, sub) -> bool:
        return isinstance(sub, type) and issubclass(sub, Tokenizer)


class Encoding(Tokenizer, metaclass=_TokenizerIsEncoding):
    """tiktoken's ``Encoding`` constructor for a :class:`Tokenizer`:
    ``Encoding(name, pat_str=..., mergeable_ranks={bytes: rank}, special_tokens={str: id})``.

    A ``pat_str`` equal to a built-in pattern's regex (tiktoken's r50k/gpt2, cl100k and o200k
    patterns) runs that pattern's scanner; any other is compiled as a regex.
    ``explicit_n_vocab`` checks the vocabulary size. ``isinstance(tokenizer, Encoding)`` holds
    for every Tokenizer."""

    def __init__(
        self,
        name: str,
        *,
        pat_str: str,
        mergeable_ranks: Mapping[bytes, int],
        special_tokens: Mapping[str, int],
        explicit_n_vocab: int | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, not {type(name).__name__}")
        if not isinstance(pat_str, str):
            raise TypeError(f"pat_str must be a regex string, not {type(pat_str).__name__}")
        pattern = {regex: builtin for builtin, regex in builtin_pattern_regexes().items()}.get(pat_str, pat_str)
        super().__init__(mergeable_ranks, special_tokens, pattern, name=name)
        if explicit_n_vocab:
            size = len(mergeable_ranks) + len(special_tokens)
            if size != explicit_n_vocab or self.n_vocab != explicit_n_vocab:
                raise ValueError(
                    f"explicit_n_vocab={explicit_n_vocab} but there are {size} tokens and ids up to {self.max_token_value}"
                )


def _rebuild(
    tokens: list[bytes],
    specials: dict[str, int],
    pattern: str,
    name: str | None,
    pipeline: dict | None = None,
    ids: list[int] | None = None,
    merges: list[tuple[bytes, bytes]] | None = None,
    ignore_merges: bool = True,
) -> Tokenizer:
    return Tokenizer(
        tokens,
        specials,
        pattern,
        name=name,
        pipeline=Pipeline.from_dict(pipeline) if pipeline else None,
        ids=ids,
        merges=merges,
        ignore_merges=ignore_merges,
    )


def _rank_list(
    mergeable_ranks: Sequence[bytes] | Mapping[bytes, int], ids: Sequence[int] | None
) -> tuple[list[bytes], list[int] | None]:
    """The tokens in rank order and their ids (None: the ranks), from a list (and
    ``ids``) or a ``{bytes: id}`` dict."""
    if isinstance(mergeable_ranks, Mapping):
        if ids is not None:
            raise TypeError("ids go with a list of tokens; a {bytes: rank} dict holds its own")
        ranks = sorted(((_token_id(rank), token) for token, rank in mergeable_ranks.items()), key=lambda item: item[0])
        tokens = [token for _, token in ranks]
        ids = [rank for rank, _ in ranks]
        for previous, (rank, _) in zip(ids, ranks[1:]):
            if rank == previous:
                shared = [token for r, token in ranks if r == rank]
                raise ValueError(f"mergeable tokens {shared[0]!r} and {shared[1]!r} share rank {rank}")
    elif isinstance(mergeable_ranks, (str, bytes)):
        raise TypeError("mergeable_ranks must be a list of token bytes or a {bytes: rank} dict")
    else:
        tokens = list(mergeable_ranks)
        if ids is not None:
            if isinstance(ids, (str, bytes)):
                raise TypeError("ids must be a sequence of ints")
            ids = [_token_id(i) for i in ids]
            if len(ids) != len(tokens):
                raise ValueError(f"{len(ids)} ids for {len(tokens)} mergeable tokens")
    for rank, token in enumerate(tokens):
        if not isinstance(token, bytes):
            raise TypeError(f"mergeable token of rank {rank} must be bytes, not {type(token).__name__}")
    if ids is not None:
        # The core checks the rest (distinct) where they are not simply the ranks.
        if ids and not 0 <= min(ids) <= max(ids) < _ID_LIMIT:
            bad = min(ids) if min(ids) < 0 else max(ids)
            raise ValueError(f"mergeable token id {bad} is out of range (ids are 0 to {_ID_LIMIT - 1})")
        if ids == list(range(len(ids))):
            ids = None
    return tokens, ids


def _merge_list(merges: Sequence[tuple[bytes, bytes]] | None) -> list[tuple[bytes, bytes]] | None:
    """``merges`` as a list of (bytes, bytes) pairs, checked for type (the core checks
    that each names tokens and builds one)."""
    if merges is None:
        return None
    if isinstance(merges, (str, bytes)):
        raise TypeError("merges must be a sequence of (bytes, bytes) pairs")
    # The readers' lists (hundreds of thousands of pairs) pass this in three sweeps in C.
    if (
        type(merges) is list
        and set(map(type, merges)) <= {tuple}
        and set(map(len, merges)) <= {2}
        and set(map(type, itertools.chain.from_iterable(merges))) <= {bytes}
    ):
        return list(merges)
    pairs = [tuple(merge) if isinstance(merge, (tuple, list)) else merge for merge in merges]
    for number, merge in enumerate(pairs, start=1):
        if not (isinstance(merge, tuple) and len(merge) == 2 and all(isinstance(part, bytes) for part in merge)):
            raise TypeError(f"merge {number} must be a (bytes, bytes) pair, not {merge!r:.80}")
    return pairs


def _special_dict(special_tokens: Mapping[str, int] | None) -> dict[str, int]:
    if special_tokens is None:
        return {}
    if not isinstance(special_tokens, Mapping):
        raise TypeError("special_tokens must be a {string: id} mapping")
    result = {}
    for text, token in special_tokens.items():
        if not isinstance(text, str) or not text:
            raise TypeError(f"special token {text!r} must be a non-empty string")
        result[text] = _token_id(token)
        if result[text] < 0:
            raise ValueError(f"special token {text!r} has negative id {token}")
        if result[text] >= _ID_LIMIT:
            raise ValueError(f"special token {text!r} has id {token}; ids must be below {_ID_LIMIT}")
    if len(set(result.values())) != len(result):
        raise ValueError(f"two special tokens share an id: {result}")
    return result


def _surrogate_safe(call, text: str | list[str], *args):
    """Calls ``call(text, *args)``; text with lone surrogates (not encodable as UTF-8)
    is retried with each surrogate replaced by U+FFFD, as tiktoken does."""
    try:
        return call(text, *args)
    except UnicodeEncodeError:
        if isinstance(text, list):
            return call([_replace_surrogates(t) for t in text], *args)
        return call(_replace_surrogates(text), *args)


def _replace_surrogates(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _u32_array(data: bytes) -> np.ndarray:
    """The core's little-endian u32 ids as a read-only native ``uint32`` array (no copy on a
    little-endian machine)."""
    import numpy as np

    return np.frombuffer(data, dtype="<u4").astype(np.uint32, copy=False)


class FlatIds(NamedTuple):
    """The ids of a batch of texts in one array: text ``i``'s are ``ids[offsets[i]:offsets[i + 1]]``.

    Both are read-only: ``ids`` ``uint32``, ``offsets`` ``int64`` and one longer than the batch.
    """

    ids: np.ndarray
    offsets: np.ndarray

    def split(self) -> list[np.ndarray]:
        """Each text's ids, as views into :attr:`ids`."""
        return [self.ids[a:b] for a, b in zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist())]

    def with_around(self, before: Sequence[int], after: Sequence[int]) -> FlatIds:
        """The same with ``before`` put ahead of each text's ids and ``after`` behind them (a
        tokenizer's BOS and EOS ids); itself when both are empty."""
        import numpy as np

        if not before and not after:
            return self
        texts = len(self.offsets) - 1
        lengths = np.diff(self.offsets)
        extra = len(before) + len(after)
        offsets = self.offsets + extra * np.arange(texts + 1, dtype=np.int64)
        ids = np.empty(len(self.ids) + extra * texts, dtype=np.uint32)
        # Each old id moves right by the extra ids of the texts before its own, plus `before`.
        shift = np.repeat(extra * np.arange(texts, dtype=np.int64) + len(before), lengths)
        ids[np.arange(len(self.ids), dtype=np.int64) + shift] = self.ids
        for k, id_ in enumerate(before):
            ids[offsets[:-1] + k] = id_
        for k, id_ in enumerate(after):
            ids[offsets[1:] - len(after) + k] = id_
        ids.flags.writeable = offsets.flags.writeable = False
        return FlatIds(ids, offsets)


def _flat_ids(data: tuple[bytes, bytes]) -> FlatIds:
    """The core's flat batch (little-endian u32 ids, little-endian i64 offsets) as numpy arrays."""
    import numpy as np

    ids, offsets = data
    return FlatIds(_u32_array(ids), np.frombuffer(offsets, dtype="<i8").astype(np.int64, copy=False))


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")


def _text_list(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list of strings, not a single string")
    # The core checks each item (TypeError "texts[i] must be str, not ...").
    return texts if isinstance(texts, list) else list(texts)


def _check_threads(num_threads: int | None) -> int | None:
    if num_threads is None:
        return None
    if isinstance(num_threads, bool) or not isinstance(num_threads, int):
        raise TypeError("num_threads must be a positive int or None")
    if num_threads < 1:
        raise ValueError(f"num_threads must be at least 1, got {num_threads}")
    return num_threads


def _token_id(token: object) -> int:
    if isinstance(token, bool):
        raise TypeError("a token id must be an int, not bool")
    try:
        return operator.index(token)
    except TypeError:
        raise TypeError(f"a token id must be an int, not {type(token).__name__}") from None


def _ids_fit(call, ids: int | list[int]):
    """``call(ids)``, where an id beyond 64 bits (which the core cannot even read, so
    certainly unknown) is the same ValueError as any other unknown id, not an OverflowError."""
    try:
        return call(ids)
    except OverflowError:
        raise _overflowed(ids) from None


def _overflowed(ids: int | list[int]) -> ValueError:
    # The core reads ids in order: the ones before the culprit are ints that fit.
    position, bad = next((k, i) for k, i in enumerate(ids if isinstance(ids, list) else [ids]) if not -(2**63) <= i < 2**63)
    why = ": ids are non-negative" if bad < 0 else ""
    return ValueError(f"{'unknown' if bad >= 0 else 'invalid'} token id {bad} at position {position}{why}")


# What codecs.lookup_error knows from the start (checked there for any other name).
_BUILTIN_ERROR_HANDLERS = frozenset(
    {"strict", "replace", "ignore", "backslashreplace", "surrogateescape", "surrogatepass", "xmlcharrefreplace", "namereplace"}
)


def _decoded(call, ids, *args):
    """``call(ids, *args)``, one of the core's decoders: a list goes as it is (the core reads it in
    place), a numpy array packed (see :func:`_packed_ids`), anything else as a list; an unknown id
    is an :class:`UnknownTokenError`. Plain try/except, as a tiny decode (a token while
    streaming) is mostly this call's overhead."""
    try:
        if ids.__class__ is not list:
            packed = _packed_ids(ids)
            if packed is not None:
                return call(packed, *args, packed=True)
            ids = _id_list(ids)
        try:
            return call(ids, *args)
        except OverflowError:
            raise _overflowed(ids) from None
    except ValueError as error:
        _raise_unknown_as_key_error(error)
        raise


def _decoded_token(call, token: int):
    """``call(token)`` for one token id, its errors as :func:`_decoded`'s."""
    try:
        return _ids_fit(call, token)
    except ValueError as error:
        _raise_unknown_as_key_error(error)
        raise


def _raise_unknown_as_key_error(error: ValueError) -> None:
    """The core's "unknown token id" ValueError as :class:`UnknownTokenError` (a KeyError as in
    tiktoken, and the ValueError fastllm documents); other errors are the caller's to raise."""
    if error.__class__ is ValueError and str(error).startswith("unknown token id"):
        raise UnknownTokenError(str(error)) from None


def _packed_ids(ids: object) -> bytes | None:
    """A 1-d numpy array of integer ids as little-endian 32-bit words, where every id fits
    one (no Python int per id: ``tolist`` made decoding a third as fast as from a list).
    None for anything else, which :func:`_id_list` takes (and names a bad id's position)."""
    np = sys.modules.get("numpy")  # an array's module is loaded already
    if np is None or not isinstance(ids, np.ndarray) or ids.ndim != 1 or ids.dtype.kind not in "iu":
        return None
    if ids.size and (ids.dtype.kind == "i" or ids.dtype.itemsize > 4):
        if int(ids.min()) < 0 or int(ids.max()) > 0xFFFF_FFFF:
            return None
    return ids.astype("<u4", copy=False).tobytes()


def _id_list(ids: Iterable[int]) -> list[int]:
    if hasattr(ids, "tolist"):  # numpy arrays, torch tensors
        ids = ids.tolist()
    if isinstance(ids, (str, bytes, int)):
        raise TypeError(f"ids must be a sequence of token ids, not {type(ids).__name__}")
    # The core checks each element (TypeError for non-integers, ValueError for unknown ids).
    return ids if isinstance(ids, list) else list(ids)


def _short(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 40 else pattern[:37] + "...")
