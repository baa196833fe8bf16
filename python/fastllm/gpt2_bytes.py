"""GPT-2's reversible map between bytes and printable unicode characters.

Byte-level BPE files in the GPT-2 lineage (``vocab.json``, ``merges.txt``, HF
``tokenizer.json``) store every token as text: each byte becomes one
character. Printable Latin-1 bytes map to themselves; the other 68 bytes
(controls, space, DEL, NBSP, soft hyphen) map in byte order to U+0100, U+0101,
... so that no token text contains whitespace or control characters.
"""

from __future__ import annotations


def _printable_bytes() -> list[int]:
    return [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\u00a1"), ord("\u00ac") + 1),
        *range(ord("\u00ae"), ord("\u00ff") + 1),
    ]


def _build_table() -> list[str]:
    table = [""] * 256
    printable = set(_printable_bytes())
    shifted = 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


#: ``BYTE_TO_CHAR[b]`` is the character that stands for byte ``b``.
BYTE_TO_CHAR: tuple[str, ...] = tuple(_build_table())
#: The inverse of :data:`BYTE_TO_CHAR`.
CHAR_TO_BYTE: dict[str, int] = {char: byte for byte, char in enumerate(BYTE_TO_CHAR)}


# str.translate tables: Latin-1 text of the bytes <-> GPT-2 text. Characters below 256
# that stand for no byte (space, controls, ...) map to U+FFFF so encoding them fails.
_TO_GPT2 = {byte: char for byte, char in enumerate(BYTE_TO_CHAR)}
_FROM_GPT2 = {**{code: 0xFFFF for code in range(256)}, **{ord(char): byte for char, byte in CHAR_TO_BYTE.items()}}


def bytes_to_text(data: bytes) -> str:
    """The GPT-2 text form of ``data`` (one character per byte)."""
    return data.decode("latin-1").translate(_TO_GPT2)


def text_to_bytes(text: str) -> bytes:
    """The bytes that a GPT-2 token text stands for.

    Raises ValueError naming the first character that is not in the map.
    """
    try:
        return text.translate(_FROM_GPT2).encode("latin-1")
    except UnicodeEncodeError:
        bad = next(c for c in text if c not in CHAR_TO_BYTE)
        raise ValueError(
            f"{text!r} is not GPT-2 byte-level text: character {bad!r} (U+{ord(bad):04X}) does not stand for a byte"
        ) from None
