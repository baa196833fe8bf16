"""``read_jsonl``: errors name the line and the 1-based character column where JSON
or UTF-8 goes wrong; lines end at ``\\n`` only."""

from __future__ import annotations

import pytest

from fastllm.train.data import read_jsonl


def error_of(tmp_path, data: bytes) -> str:
    path = tmp_path / "d.jsonl"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        list(read_jsonl(path))
    message = str(info.value)
    assert message.startswith(f"{path}:")
    return message[len(str(path)) :]


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ('{"a": x}', ":1: malformed JSON (Expecting value at column 7)"),
        ('   {"a": x}', ":1: malformed JSON (Expecting value at column 10)"),
        ('{"\u00e9\u65e5\U0001f600": x}', ":1: malformed JSON (Expecting value at column 9)"),
        # The error is at the end of the line: json counts the newline and says column 1.
        ('{"a": 1', ":1: malformed JSON (Expecting ',' delimiter at column 8)"),
        ('  {"\u00e9": "b"', ":1: malformed JSON (Expecting ',' delimiter at column 12)"),
        ('{"a": 1,', ":1: malformed JSON (Expecting property name enclosed in double quotes at column 9)"),
        # json's message ends in "starting at": not "at at".
        ('{"a": "unterminated', ":1: malformed JSON (Unterminated string starting at column 7)"),
    ],
)
@pytest.mark.parametrize("ending", ["\n", "\r\n", ""])
def test_malformed_json_column(tmp_path, line, where, ending):
    assert error_of(tmp_path, f'{{"ok": 1}}\n\n{line}{ending}'.encode()) == where.replace(":1:", ":3:", 1)


def test_bare_carriage_return_is_whitespace_not_a_line_end(tmp_path):
    path = tmp_path / "cr.jsonl"
    path.write_bytes(b'{"a": 1,\r "b": "x"}\r\n\n{"c": 2}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1, "b": "x"}), (3, {"c": 2})]


def test_invalid_utf8_names_its_line_and_column(tmp_path):
    # The decoder reads ahead: the error used to be reported on line 1.
    data = b'{"a": 1}\n' * 3 + '{"t": "\u00e9'.encode() + b'\xff"}\n' + b'{"a": 1}\n'
    assert error_of(tmp_path, data) == ":4: not valid UTF-8 (invalid start byte at column 9)"
    assert error_of(tmp_path, b'{"a": 1}\n{"t": "\xe6\x97') == ":2: not valid UTF-8 (unexpected end of data at column 8)"


def test_good_file(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text('{"a": "\u00e9"}\n  \n["x"]', encoding="utf-8")
    assert list(read_jsonl(path)) == [(1, {"a": "\u00e9"}), (3, ["x"])]
