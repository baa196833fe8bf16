"""The real encodings and corpora the tokenizer tests compare on."""

#: fastllm encoding name -> (tiktoken constructor name, shared vocab file, fastllm pattern name)
ENCODINGS = {
    "gpt2": ("r50k_base", "gpt2.tiktoken", "gpt2"),
    "cl100k_base": ("cl100k_base", "cl100k_base.tiktoken", "cl100k"),
    "o200k_base": ("o200k_base", "o200k_base.tiktoken", "o200k"),
}
CORPORA = ("tinyshakespeare.txt", "multilingual.txt")
