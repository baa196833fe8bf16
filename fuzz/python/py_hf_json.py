"""atheris: Tokenizer.from_hf_json (HF tokenizer.json) on arbitrary bytes."""

from _loader_target import Tokenizer, run

if __name__ == "__main__":
    run("tokenizer.json", lambda path, _: Tokenizer.from_hf_json(path))
