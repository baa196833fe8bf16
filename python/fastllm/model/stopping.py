"""When generation stops: stop tokens, stop strings, and where a stop string cuts streamed text."""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union


def normalize_stop_tokens(stop_tokens: Union[None, int, Iterable[int]], vocab_size: int) -> frozenset:
    if stop_tokens is None:
        return frozenset()
    if isinstance(stop_tokens, int) and not isinstance(stop_tokens, bool):
        stop_tokens = [stop_tokens]
    tokens = list(stop_tokens)
    for token in tokens:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size:
            raise ValueError(f"stop token {token!r} is not a token id in [0, {vocab_size})")
    return frozenset(tokens)


def normalize_stop_strings(stop_strings: Union[None, str, Iterable[str]]) -> Tuple[str, ...]:
    if stop_strings is None:
        return ()
    if isinstance(stop_strings, str):
        stop_strings = [stop_strings]
    strings = tuple(stop_strings)
    for s in strings:
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop strings must be non-empty str, got {s!r}")
    return strings


def find_stop(text: str, stop_strings: Sequence[str]) -> int:
    """Index of the earliest stop string in ``text``, or -1."""
    hits = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return min(hits) if hits else -1


def pending_prefix_len(text: str, stop_strings: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could still grow into a stop string."""
    longest = 0
    for s in stop_strings:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


class StopCondition:
    """Tracks, row by row, whether a batch being generated has stopped.

    A row stops after producing one of ``stop_tokens`` or once the text of its generated tokens
    contains one of ``stop_strings`` (decoded with ``decode``); the token that completes the
    stop is kept, as ``transformers`` does.
    """

    def __init__(
        self,
        batch: int,
        stop_tokens: frozenset = frozenset(),
        stop_strings: Tuple[str, ...] = (),
        decode: Optional[Callable[[List[int]], str]] = None,
    ) -> None:
        if stop_strings and decode is None:
            raise ValueError("stop strings need a tokenizer to decode the generated tokens")
        self.stop_tokens = stop_tokens
        self.stop_strings = stop_strings
        self.decode = decode
        self.generated: List[List[int]] = [[] for _ in range(batch)]
        self.done = [False] * batch

    def update(self, new_tokens: Sequence[int]) -> List[bool]:
        """Record one new token per row (ignored for rows already done); return ``done``."""
        for row, token in enumerate(new_tokens):
            if self.done[row]:
                continue
            self.generated[row].append(int(token))
            if token in self.stop_tokens:
                self.done[row] = True
            elif self.stop_strings and find_stop(self.decode(self.generated[row]), self.stop_strings) >= 0:
                self.done[row] = True
        return self.done
