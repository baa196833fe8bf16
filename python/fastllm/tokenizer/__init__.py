"""fastllm's byte-level BPE tokenizer (tiktoken's semantics, Rust core).

* :mod:`.bpe_tokenizer`: :class:`Tokenizer`, :class:`IncrementalDecoder` and :class:`FlatIds` (a batch's ids
  as numpy arrays).
* :mod:`.training`: learning a vocabulary (:meth:`Tokenizer.train`).
* :mod:`.encodings`: the named encodings (``gpt2``, ``r50k_base``, ``cl100k_base``, ``o200k_base``),
  cached and downloaded, and tiktoken's model table.
* :mod:`.unstable`: tiktoken's ``encode_with_unstable``.
* :mod:`.lookup`: :func:`open_tokenizer`, a tokenizer from a name, a file or a directory.
* :mod:`.formats`: one module per tokenizer file format.
* :mod:`.vocab`: the vocabulary every format reads and writes, and its merges.
* :mod:`.pipeline`: what a HF ``tokenizer.json`` adds around the split pattern.
* :mod:`.patterns`: the split patterns built into the core.
* :mod:`.display`: tokens shown to people (pieces, escapes, the colour cycle of ``show`` and the report).
"""

from fastllm.tokenizer.bpe_tokenizer import Encoding, FlatIds, IncrementalDecoder, Tokenizer, UnknownTokenError
from fastllm.tokenizer.encodings import (
    VocabUnavailableError,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
    list_encoding_names,
    list_encodings,
)
from fastllm.tokenizer.formats.fastllm_json import TOKENIZER_FILE
from fastllm.tokenizer.lookup import open_tokenizer
from fastllm.tokenizer.vocab import ENDOFTEXT

__all__ = [
    "ENDOFTEXT",
    "Encoding",
    "FlatIds",
    "IncrementalDecoder",
    "TOKENIZER_FILE",
    "Tokenizer",
    "UnknownTokenError",
    "VocabUnavailableError",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "list_encoding_names",
    "list_encodings",
    "open_tokenizer",
]
