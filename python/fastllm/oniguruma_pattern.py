"""Rewrites a split regex (fancy-regex / tiktoken dialect) for Oniguruma, HF tokenizers' engine.

Two constructs read differently there:

* ``X{n,m}+`` is possessive in fancy-regex but means "``X{n,m}`` one or more
  times" in Oniguruma. It becomes the atomic group ``(?>X{n,m})``, which is
  what possessive means.
* ``$`` and ``^`` mean end/start of *text* in fancy-regex (without the ``m``
  flag) but end/start of *line* in Oniguruma. They become ``\\z`` and ``\\A``.

Everything else in the patterns tiktoken uses reads the same in both.
"""

from __future__ import annotations

import re

_BOUNDED_REPEAT = re.compile(r"\{\d+(?:,\d*)?\}")


def to_oniguruma(pattern: str) -> str:
    """The Oniguruma spelling of ``pattern`` (see the module docstring)."""
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
