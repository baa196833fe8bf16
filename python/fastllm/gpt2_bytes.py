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


def bytes_to_text(data: bytes) -> str:
    """The GPT-2 text form of ``data`` (one character per byte)."""
    return "".join(BYTE_TO_CHAR[b] for b in data)


def text_to_bytes(text: str) -> bytes:
    """The bytes that a GPT-2 token text stands for.

    Raises ValueError naming the first character that is not in the map.
    """
    try:
        return bytes(CHAR_TO_BYTE[c] for c in text)
    except KeyError as exc:
        raise ValueError(
            f"{text!r} is not GPT-2 byte-level text: character {exc.args[0]!r} "
            f"(U+{ord(exc.args[0]):04X}) does not stand for a byte"
        ) from None
