"""The body shared by the single-file loader targets: write the input to a file,
load it, and judge the outcome with the harness's oracle."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("FASTLLM_OFFLINE", "1")

import atheris  # noqa: E402

with atheris.instrument_imports():
    from fastllm import Tokenizer  # noqa: F401  (instrumented: the loaders live under it)
    import fastllm.tokenizer  # noqa: F401

from _harness import check_error, check_tokenizer, scratch_dir  # noqa: E402


def run(file_name: str, load) -> None:
    """Fuzzes ``load(path, first_byte)`` on a file named ``file_name`` holding the input."""
    work = scratch_dir()
    path = work / file_name

    def one_input(data: bytes) -> None:
        if not data:
            return
        path.write_bytes(data[1:])
        try:
            tok = load(path, data[0])
        except Exception as exc:  # judged by the oracle
            check_error(exc, str(path))
            return
        check_tokenizer(tok, work)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
