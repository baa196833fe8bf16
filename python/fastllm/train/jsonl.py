"""Reading JSON Lines files with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


def read_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """Yields ``(line_number, record)`` for each non-blank line (1-based numbers).

    A malformed line raises ``ValueError("FILE:LINE: ...")``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with open(path, encoding="utf-8") as handle:
        line_no = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{line_no + 1}: not valid UTF-8 ({exc.reason})") from None
            if not line:
                break
            line_no += 1
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: malformed JSON ({exc.msg} at column {exc.colno})") from None


def load_jsonl(path: str | Path) -> list[tuple[int, object]]:
    """All records of a JSONL file; an empty file is an error."""
    records = list(read_jsonl(path))
    if not records:
        raise ValueError(f"{path} holds no records")
    return records
