"""Split regexes between fastllm's dialect (fancy-regex, the Rust ``regex`` crate's
syntax plus lookarounds; tiktoken uses it too) and Oniguruma's Ruby syntax, the
dialect of HF ``tokenizers`` (``tokenizer.json``).

Most of a regex reads the same in both. What does not, and what each direction does with it:

==================  =================================  =================================
construct           Oniguruma (Ruby syntax)            fancy-regex
==================  =================================  =================================
``^`` ``$``         start / end of a line              start / end of the text
``(?m)``            ``.`` matches ``\\n``               ``^`` ``$`` match at lines
``(?s)``            (no such flag)                     ``.`` matches ``\\n``
``X{n,m}+``         ``(?:X{n,m})+``                    possessive: ``(?>X{n,m})``
``\\w`` ``\\b``       word = Alphabetic, M, Nd, Pc       word = Alphabetic, M, Nd, Pc, Join_Control
                    (and ``²³¹¼½¾``, outside ``[...]``)
``\\Z``             end, or before one final ``\\n``   end, or before final ``\\n``s
``[[:alpha:]]``     Unicode classes                    ASCII classes
==================  =================================  =================================

Both directions rewrite these into constructs that mean the same in the other dialect;
POSIX bracket classes, Rust's class set operators ``--``/``~~``, and escapes one side
lacks (``\\K``, ``\\R``, ``\\X``, ``\\G``, ``\\g``) raise :class:`RegexDialectError`.
"""

from __future__ import annotations

import re

#: Oniguruma's word characters, spelled for fancy-regex (class contents, without brackets):
#: inside a bracket class (``[\w]``, ``[\W]``); ``\w``, ``\W`` and ``\b`` outside a class
#: also count the Latin-1 superscripts and fractions as word characters.
#: (Measured with tokenizers on every code point below U+30000.)
_ONIG_CLASS_WORD = r"\p{Alphabetic}\p{M}\p{Nd}\p{Pc}"
_ONIG_WORD = _ONIG_CLASS_WORD + r"\x{B2}\x{B3}\x{B9}\x{BC}-\x{BE}"
#: The ``regex`` crate's word characters, spelled for Oniguruma.
_RUST_WORD = r"\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}"

_BOUNDED_REPEAT = re.compile(r"\{(\d*)(?:,(\d*))?\}")
_FLAG_GROUP = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")
_UNSUPPORTED_ESCAPES = "KRXGgO"
_POSIX_CLASS = re.compile(r"(?<!\\)\[:\^?[a-z]+:\]")


class RegexDialectError(ValueError):
    """A regex construct with no equivalent in the other dialect."""


def _word_boundary(word: str, negate: bool) -> str:
    """``\\b`` (or ``\\B``) for the word class ``word``, as lookarounds both dialects read alike."""
    w = f"[{word}]"
    if negate:
        return f"(?:(?<={w})(?={w})|(?<!{w})(?!{w}))"
    return f"(?:(?<={w})(?!{w})|(?<!{w})(?={w}))"


def from_oniguruma(pattern: str) -> str:
    """The fancy-regex spelling of ``pattern``, a ``tokenizer.json`` (Oniguruma) regex."""
    return _translate(pattern, to_onig=False)


def to_oniguruma(pattern: str) -> str:
    """The Oniguruma spelling of ``pattern``, a fancy-regex (tiktoken dialect) regex.

    Possessive ``X{n,m}+`` becomes the atomic group ``(?>X{n,m})``; ``$`` and ``^``
    (outside ``(?m)``) become ``\\z`` and ``\\A``; see the module for the rest.
    """
    return _translate(pattern, to_onig=True)


def _translate(pattern: str, to_onig: bool) -> str:
    out: list[str] = []  # output pieces; an atom's start is an index into this list
    group_starts: list[int] = []
    # Per open group: the flag in force that changes the anchors' meaning
    # (fancy's multi-line flag; Oniguruma's anchors always are per line).
    multiline_stack: list[bool] = []
    multiline = False
    last_atom: int | None = None
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            end = _escape_end(pattern, i)
            last_atom = len(out)
            out.append(_escape(pattern[i:end], to_onig, pattern))
            i = end
        elif c == "[":
            end = _class_end(pattern, i)
            last_atom = len(out)
            out.append(_class(pattern[i:end], to_onig, pattern))
            i = end
        elif c == "(":
            flags = _FLAG_GROUP.match(pattern, i)
            if flags:
                text, multiline_after = _flags(flags, to_onig, multiline, pattern)
                if flags.group(3) == ")":  # (?flags): for the rest of the enclosing group
                    out.append(text)
                    multiline = multiline_after
                    last_atom = None
                    i = flags.end()
                    continue
                multiline_stack.append(multiline)
                multiline = multiline_after
                group_starts.append(len(out))
                out.append(text)
                i = flags.end()
            else:
                multiline_stack.append(multiline)
                group_starts.append(len(out))
                out.append(c)
                i += 1
            last_atom = None
        elif c == ")":
            out.append(c)
            last_atom = group_starts.pop() if group_starts else None
            multiline = multiline_stack.pop() if multiline_stack else False
            i += 1
        elif c == "{" and (m := _BOUNDED_REPEAT.match(pattern, i)) and (m.group(1) or m.group(2)):
            end = m.end()
            repeat = m.group() if m.group(1) else "{0," + m.group(2) + "}"
            if end < n and pattern[end] == "+" and last_atom is not None:
                atom = "".join(out[last_atom:])
                del out[last_atom:]
                # Possessive in fancy-regex; "repeat the repeat" in Oniguruma.
                out.append(f"(?>{atom}{repeat})" if to_onig else f"(?:{atom}{repeat})+")
                end += 1
            else:
                out.append(repeat)
            last_atom = None
            i = end
        elif c in "$^":
            if to_onig:
                out.append(c if multiline else ("\\z" if c == "$" else "\\A"))
            else:
                out.append(f"(?m:{c})")
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


def _flags(m: re.Match, to_onig: bool, multiline: bool, pattern: str) -> tuple[str, bool]:
    """A ``(?on-off)`` or ``(?on-off:`` group start in the other dialect, and whether
    fancy's multi-line flag is on after it."""
    on, off, end = m.group(1), m.group(2) or "", m.group(3)
    if to_onig:
        allowed, rename = "imsxu", {"s": "m", "m": "", "u": ""}
    else:
        allowed, rename = "imx", {"m": "s"}
    for letter in on + off:
        if letter not in allowed:
            raise RegexDialectError(f"regex {pattern!r}: flag {letter!r} in {m.group()!r} has no equivalent")
    if to_onig and "u" in off:
        raise RegexDialectError(f"regex {pattern!r}: {m.group()!r} turns Unicode off, which Oniguruma cannot")
    if to_onig:
        multiline = (multiline or "m" in on) and "m" not in off
    on = "".join(rename.get(letter, letter) for letter in on)
    off = "".join(rename.get(letter, letter) for letter in off)
    if not on and not off:
        return ("(?:" if end == ":" else ""), multiline
    return f"(?{on}{'-' + off if off else ''}{end}", multiline


def _escape(escape: str, to_onig: bool, pattern: str) -> str:
    kind = escape[1:2]
    if kind in _UNSUPPORTED_ESCAPES:
        raise RegexDialectError(f"regex {pattern!r}: escape {escape!r} is not supported")
    word = _RUST_WORD if to_onig else _ONIG_WORD
    if kind == "w":
        return f"[{word}]"
    if kind == "W":
        return f"[^{word}]"
    if kind in "bB":
        return _word_boundary(word, negate=kind == "B")
    if kind == "Z":  # end of text, or before newlines that end it: one in Oniguruma, any number in fancy-regex
        return "(?=\\n*\\z)" if to_onig else "(?=\\n?\\z)"
    if to_onig and kind in "uU" and escape[2:3] == "{":
        return "\\x" + escape[2:]
    return escape


def _class(text: str, to_onig: bool, pattern: str) -> str:
    """A bracket expression with its ``\\w`` / ``\\W`` rewritten."""
    if _POSIX_CLASS.search(text):
        raise RegexDialectError(f"regex {pattern!r}: POSIX bracket classes like {text!r} read differently in the two dialects")
    if to_onig and ("--" in text or "~~" in text):
        raise RegexDialectError(f"regex {pattern!r}: class set operators ('--', '~~') in {text!r} are not supported")
    word = _RUST_WORD if to_onig else _ONIG_CLASS_WORD
    out = []
    j = 0
    while j < len(text):
        if text[j] == "\\":
            end = _escape_end(text, j)
            escape = text[j:end]
            if escape[1:2] in _UNSUPPORTED_ESCAPES:
                raise RegexDialectError(f"regex {pattern!r}: escape {escape!r} is not supported")
            out.append(word if escape == "\\w" else f"[^{word}]" if escape == "\\W" else escape)
            j = end
        else:
            out.append(text[j])
            j += 1
    return "".join(out)


def _escape_end(pattern: str, i: int) -> int:
    """End index of the escape sequence starting at ``pattern[i] == '\\\\'``."""
    if i + 1 >= len(pattern):
        return len(pattern)
    kind = pattern[i + 1]
    if kind in "pPxuU" and i + 2 < len(pattern) and pattern[i + 2] == "{":
        close = pattern.find("}", i + 2)
        return len(pattern) if close < 0 else close + 1
    if kind in "pP" and i + 2 < len(pattern):
        return i + 3  # one-letter property, \pL
    if kind == "x":
        return min(i + 4, len(pattern))
    if kind == "u":
        return min(i + 6, len(pattern))
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
