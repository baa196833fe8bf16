"""tiktoken's ``encode_with_unstable``: a text's stable tokens, and the token sequences its
unstable end may turn into once more text follows.

The tokens of the last split piece (with whitespace tokens before it: split patterns like
``\\s*[\\r\\n]`` can merge them with what follows) are unstable; which they are is decided
here. Their bytes ``u`` may be continued as: any single token starting with ``u``; for each
cut of ``u`` into ``prefix + suffix``, the tokens of ``prefix + t`` for every token ``t``
starting with ``suffix``, up to the token that covers ``u``; and, when ``u`` ends in a
whitespace character, ``u`` without it and the character encoded apart (a split that appears
once text follows). The core works those out (``rust/src/unstable.rs``): thousands of tokens
start with ``.``. This is the definition tiktoken gives its result; the tests compare with
tiktoken itself.
"""

from __future__ import annotations

_SPACE_BYTES = frozenset(b" \n\t")


def encode_with_unstable(tokenizer, tokens: list[int]) -> tuple[list[int], list[list[int]]]:
    """Split ``tokens`` (a text's encoding) into its stable tokens and the possible
    completions of the rest (sorted lists of ids; see the module docstring)."""
    specials = set(tokenizer.special_tokens.values())
    if not tokens or tokens[-1] in specials:
        return tokens, []  # ends with a special token: nothing is unstable
    tail_start = max((i + 1 for i, t in enumerate(tokens) if t in specials), default=0)
    tail = tokenizer.decode_bytes(tokens[tail_start:]).decode("utf-8")
    unstable_len = len(tokenizer.encode_ordinary(tokenizer.split(tail)[-1]))

    def all_space(token: int) -> bool:
        return token not in specials and set(tokenizer.decode_single_token_bytes(token)) <= _SPACE_BYTES

    if all_space(tokens[-unstable_len]):
        while unstable_len < len(tokens) and all_space(tokens[-unstable_len - 1]):
            unstable_len += 1
    stable = tokens[: len(tokens) - unstable_len]
    unstable = tokenizer.decode_bytes(tokens[len(tokens) - unstable_len :])
    # Every token starting with some suffix of the unstable bytes, each encoded: the core.
    return stable, tokenizer._core.unstable_completions(unstable)
