"""atheris: Tokenizer.load (fastllm's own JSON file) on arbitrary bytes."""

from _loader_target import Tokenizer, run

if __name__ == "__main__":
    run("tok.json", lambda path, _: Tokenizer.load(path))
