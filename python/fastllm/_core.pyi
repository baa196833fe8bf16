"""Types of ``fastllm._core``, the Rust extension (``rust/src/bindings``).

Written by hand from the bindings; keep the two in step. ``mypy.stubtest
fastllm._core`` compares this file with the built module.
"""

from collections.abc import Iterable, Sequence
from os import PathLike
from typing import Literal, final

__all__ = [
    "__version__",
    "CoreBPE",
    "IncrementalDecoder",
    "BpeTrainer",
    "FileChunks",
    "text_chunks",
    "builtin_patterns",
    "pattern_matches_all_text",
    "testing",
]

__version__: str

#: A set of special-token strings, or "all" of a CoreBPE's special tokens.
_SpecialSet = Iterable[str] | Literal["all"]
#: A pre-tokenizer step: ("split", pattern, behavior, invert), ("digits", individual)
#: or ("byte_level", add_prefix_space, use_regex).
_Step = tuple[str, str, str, bool] | tuple[str, bool] | tuple[str, bool, bool]
#: An added token: (content, id, special, single_word, lstrip, rstrip, normalized).
_AddedToken = tuple[str, int, bool, bool, bool, bool, bool]
#: (normalizer: None or "nfc", steps, added tokens); see fastllm.tokenizer.pipeline.
_Pipeline = tuple[str | None, Sequence[_Step], Sequence[_AddedToken]]

@final
class CoreBPE:
    """A byte-level BPE tokenizer core: `CoreBPE(mergeable, special_tokens, pattern, pipeline=None)`."""

    def __new__(
        cls,
        mergeable: Sequence[bytes],
        special_tokens: dict[str, int],
        pattern: str,
        pipeline: _Pipeline | None = None,
    ) -> CoreBPE: ...
    def encode_ordinary(self, text: str) -> list[int]: ...
    def encode(
        self,
        text: str,
        allowed_special: _SpecialSet | None = None,
        disallowed_special: _SpecialSet | None = None,
    ) -> list[int]: ...
    def encode_to_u32_bytes(
        self,
        text: str,
        allowed_special: _SpecialSet | None = None,
        disallowed_special: _SpecialSet | None = None,
    ) -> bytes: ...
    def encode_ordinary_to_u32_bytes(self, text: str) -> bytes: ...
    def encode_batch(
        self,
        texts: Sequence[str],
        allowed_special: _SpecialSet | None = None,
        disallowed_special: _SpecialSet | None = None,
        num_threads: int | None = None,
    ) -> list[list[int]]: ...
    def encode_ordinary_batch(self, texts: Sequence[str], num_threads: int | None = None) -> list[list[int]]: ...
    # packed=True: ids is bytes of little-endian 32-bit words (the Python layer's form of numpy arrays)
    def decode_bytes(self, ids: Sequence[int] | bytes, *, packed: bool = False) -> bytes: ...
    def decode(self, ids: Sequence[int] | bytes, errors: str = "replace", *, packed: bool = False) -> str: ...
    def decode_tokens_bytes(self, ids: Sequence[int]) -> list[bytes]: ...
    def decode_single_token_bytes(self, id: int) -> bytes: ...
    def split(self, text: str) -> list[str]: ...
    def incremental_decoder(self) -> IncrementalDecoder: ...
    def mergeable_tokens(self) -> list[bytes]: ...
    @property
    def n_vocab(self) -> int: ...
    @property
    def pattern(self) -> str: ...
    @property
    def pattern_regex(self) -> str: ...
    @property
    def special_tokens(self) -> dict[str, int]: ...

@final
class IncrementalDecoder:
    """Streaming decoder from `CoreBPE.incremental_decoder()` (no public constructor)."""

    def add(self, id: int) -> str: ...
    def add_many(self, ids: Sequence[int]) -> str: ...
    def flush(self) -> str: ...
    def reset(self) -> None: ...
    @property
    def pending(self) -> bytes: ...

@final
class BpeTrainer:
    """Collects training text (`add_texts`, `add_files`), then learns merges (`train`)."""

    def __new__(cls, pattern: str, special_tokens: Sequence[str], num_threads: int | None = None) -> BpeTrainer: ...
    def add_texts(self, texts: Sequence[str], first_index: int = 0) -> None: ...
    def add_files(
        self, paths: Sequence[str | PathLike[str]], show_progress: bool = False, chunk_bytes: int = ...
    ) -> None: ...
    def train(self, vocab_size: int, min_frequency: int, show_progress: bool = False) -> list[bytes]: ...

@final
class FileChunks:
    """Iterates over `(text, start_offset)` chunks of a UTF-8 file, cut where no piece crosses."""

    def __new__(
        cls, path: str | PathLike[str], chunk_bytes: int, pattern: str, special_tokens: Sequence[str]
    ) -> FileChunks: ...
    def __iter__(self) -> FileChunks: ...
    def __next__(self) -> tuple[str, int]: ...
    @property
    def offset(self) -> int: ...

def read_tiktoken_plain(data: bytes) -> list[bytes] | None: ...
def merge_splits(tokens: Sequence[bytes]) -> list[int | None]: ...
def text_chunks(text: str, chunk_bytes: int, pattern: str, special_tokens: Sequence[str]) -> list[str]: ...
def builtin_patterns() -> dict[str, str]: ...
def pattern_matches_all_text(pattern: str) -> bool: ...

class _TestingModule:
    """The submodule `fastllm._core.testing` (helpers for the test suite only), typed as a
    class because a one-file stub cannot hold a submodule."""

    @staticmethod
    def split_regex(pattern: str, text: str) -> list[str]: ...
    @staticmethod
    def split_engine(pattern: str) -> str: ...
    @staticmethod
    def utf8_of(text: str) -> tuple[bytes, bool]: ...
    @staticmethod
    def lists_filled_directly() -> bool: ...
    @staticmethod
    def encoder_copy() -> str: ...

testing: _TestingModule
