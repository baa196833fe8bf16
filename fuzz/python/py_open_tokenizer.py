"""atheris: fastllm.tokenizer.open_tokenizer (lookup.py) on what a user may point it at.
First byte: the case; the rest: the file content or the name.
  0 a directory holding tokenizer.fastllm.json     1 a directory holding tokenizer.json
  2 a .tiktoken file (second byte: pattern or none) 3 a directory with vocab.json + merges.txt
  4 a name (must be an encoding name, or refused)   5 a file with any other name (any format)"""

import os
import shutil
import sys

from _loader_target import atheris
from _harness import PART_SEPARATOR, check_error, check_tokenizer, scratch_dir

with atheris.instrument_imports():
    from fastllm.tokenizer import open_tokenizer

PATTERNS = [None, "cl100k", "gpt2", "o200k", r"\S+|\s+", "(unclosed"]


def main() -> None:
    work = scratch_dir()
    folder = work / "spec"

    def one_input(data: bytes) -> None:
        if len(data) < 2:
            return
        case, body = data[0] % 6, data[1:]
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        pattern = None
        if case == 0:
            (folder / "tokenizer.fastllm.json").write_bytes(body)
            spec = folder
        elif case == 1:
            (folder / "tokenizer.json").write_bytes(body)
            spec = folder
        elif case == 2:
            pattern = PATTERNS[body[0] % len(PATTERNS)]
            spec = folder / "x.tiktoken"
            spec.write_bytes(body[1:])
        elif case == 3:
            vocab, _, merges = body.partition(PART_SEPARATOR)
            (folder / "vocab.json").write_bytes(vocab)
            (folder / "merges.txt").write_bytes(merges)
            spec = folder
        elif case == 4:
            spec = body.decode("utf-8", "replace")
            if os.path.exists(spec) or "\x00" in spec:
                return  # only names: never read files outside the scratch folder
        else:
            spec = folder / "tok.anything"
            spec.write_bytes(body)
        try:
            tok = open_tokenizer(str(spec) if case != 4 else spec, pattern=pattern)
        except Exception as exc:
            check_error(exc, str(spec) if case != 4 else repr(spec)[1:-1][:40])
            return
        check_tokenizer(tok, work)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
