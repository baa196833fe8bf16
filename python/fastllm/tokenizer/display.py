"""How tokens are shown to people: pieces of text, made visible, in a cycle of colours.

``fastllm tokenizer show`` (a terminal) and the HTML report of ``fastllm viz report`` both draw
a text as its tokens on alternating backgrounds; this is the one place that says how.
"""

from __future__ import annotations

from typing import List, NamedTuple, Sequence

# The backgrounds pieces cycle through (black text on each): the ANSI code a terminal gets and
# the CSS colour a page gets, the same hue in the same order.
PIECE_COLOURS = (
    (42, "#b7e4a0"),  # green
    (43, "#fbe38e"),  # yellow
    (46, "#a8e6ef"),  # cyan
    (45, "#efb8e6"),  # magenta
    (44, "#b9cff5"),  # blue
    (41, "#f5b5b0"),  # red
    (47, "#dcdcdc"),  # white (light grey on a page)
)
ANSI_BACKGROUNDS = tuple(ansi for ansi, _css in PIECE_COLOURS)
CSS_BACKGROUNDS = tuple(css for _ansi, css in PIECE_COLOURS)


class Piece(NamedTuple):
    """A piece of decoded text and the tokens ``ids[start:end]`` that spell it."""

    text: str
    start: int
    end: int


def token_pieces(tokenizer, ids: Sequence[int]) -> List[Piece]:
    """The text of each token; tokens that split a character between them make one piece
    (their bytes decode only together), invalid bytes become U+FFFD."""
    pieces: List[Piece] = []
    pending, start = b"", 0
    for i, token in enumerate(ids):
        pending += tokenizer.decode_single_token_bytes(token)
        try:
            text = pending.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":
                continue  # the next token completes the character
            text = pending.decode("utf-8", "replace")
        pieces.append(Piece(text, start, i + 1))
        pending, start = b"", i + 1
    if pending:
        pieces.append(Piece(pending.decode("utf-8", "replace"), start, len(ids)))
    return pieces


def visible(text: str) -> str:
    """``text`` with backslashes, newlines, carriage returns and tabs written as escapes."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def token_label(tokenizer, token: int) -> str:
    """A one-line label for a single token: its text with spaces as a middle dot and control
    characters escaped; bytes that are not a whole UTF-8 character are shown as ``\\xNN``."""
    raw = tokenizer.decode_single_token_bytes(int(token))
    text = raw.decode("utf-8", errors="backslashreplace").replace(" ", "\u00b7")
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
