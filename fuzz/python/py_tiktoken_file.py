"""atheris: Tokenizer.from_tiktoken on arbitrary bytes (first byte: the split pattern)."""

from _loader_target import Tokenizer, run

PATTERNS = ["cl100k", "gpt2", "o200k", r"\S+|\s+"]

if __name__ == "__main__":
    run("fuzz.tiktoken", lambda path, b: Tokenizer.from_tiktoken(path, pattern=PATTERNS[b % len(PATTERNS)]))
