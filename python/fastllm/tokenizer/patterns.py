"""The split patterns built into the Rust core: their names and regexes, as the core exports them."""

from __future__ import annotations

from fastllm import _core

_REGEXES = _core.builtin_patterns()

#: Split patterns built into the core, by name.
BUILTIN_PATTERNS = tuple(_REGEXES)


def builtin_pattern_regexes() -> dict[str, str]:
    """Built-in pattern name (``gpt2``, ``cl100k``, ``o200k``) -> its regex (a fresh dict)."""
    return dict(_REGEXES)
