"""fastllm: fast, honest parts for building GPT-style language models.

The tokenizer (Rust) needs only numpy. The model, kernels and training need the
``torch`` extra and are imported lazily, so ``import fastllm`` stays light.

A tiktoken user changes one import, ``import fastllm as tiktoken``: ``get_encoding``,
``encoding_for_model``, ``encoding_name_for_model``, ``list_encoding_names`` and ``Encoding``
are here, with tiktoken's semantics.
"""

from fastllm._core import __version__
from fastllm.tokenizer import (
    Encoding,
    IncrementalDecoder,
    Tokenizer,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    list_encoding_names,
)

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


__all__ = [
    "Encoding",
    "GPT",
    "GPTConfig",
    "IncrementalDecoder",
    "Tokenizer",
    "__version__",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "list_encoding_names",
]
