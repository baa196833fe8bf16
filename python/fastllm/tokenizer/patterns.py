"""The split patterns built into the Rust core: their names and regexes.

The one place that asks the core for the regexes, so that a core function
returning them can replace the workaround below without touching callers.
"""

from __future__ import annotations

import functools

from fastllm import _core

#: Split patterns built into the core, by name.
BUILTIN_PATTERNS = ("gpt2", "cl100k", "o200k")


@functools.lru_cache(maxsize=None)
def _builtin_regex(name: str) -> str:
    # The core reports a pattern's regex only through a CoreBPE; the 256 single bytes are
    # the smallest vocabulary it accepts.
    return _core.CoreBPE([bytes([b]) for b in range(256)], {}, name).pattern_regex


def builtin_pattern_regexes() -> dict[str, str]:
    """Built-in pattern name -> its regex."""
    return {name: _builtin_regex(name) for name in BUILTIN_PATTERNS}
