"""atheris: Tokenizer.from_pretrained on a directory of GPT-2 files: vocab.json,
merges.txt and (when the input has a third part) added_tokens.json, cut out of one input."""

import shutil
import sys

from _loader_target import Tokenizer, atheris
from _harness import GPT2_SEPARATOR, check_error, check_tokenizer, scratch_dir

NAMES = ["vocab.json", "merges.txt", "added_tokens.json"]


def main() -> None:
    work = scratch_dir()
    folder = work / "gpt2"

    def one_input(data: bytes) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        parts = data.split(GPT2_SEPARATOR)
        for name, part in zip(NAMES, parts + [b""] * (2 - len(parts))):
            (folder / name).write_bytes(part)
        try:
            tok = Tokenizer.from_pretrained(folder)
        except Exception as exc:
            check_error(exc, str(folder))
            return
        check_tokenizer(tok, work)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
