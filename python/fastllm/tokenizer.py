"""fastllm.Tokenizer (being written)."""


class Tokenizer:  # placeholder until the Rust-backed implementation lands
    pass


class IncrementalDecoder:
    pass
