"""fastllm: fast, honest parts for building GPT-style language models.

The tokenizer (Rust) needs only numpy. The model, kernels and training need the
``torch`` extra and are imported lazily, so ``import fastllm`` stays light.
"""

from fastllm._core import __version__
from fastllm.tokenizer import IncrementalDecoder, Tokenizer, get_encoding

_LAZY = {
    "GPT": "fastllm.model",
    "GPTConfig": "fastllm.model",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastllm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["Tokenizer", "IncrementalDecoder", "get_encoding", "GPT", "GPTConfig", "__version__"]
