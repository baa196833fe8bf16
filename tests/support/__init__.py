"""Helpers shared by the test suites, imported as ``tests.support.<module>``
(pyproject.toml puts the repository root on sys.path for pytest).

- ``encodings``: the real encodings (fastllm name, tiktoken constructor, vocab file,
  pattern name) and corpora the tokenizer tests compare on, one table for all of them.
- ``text_strategies``: Hypothesis strategies for text that stresses split patterns and BPE.
- ``reference_bpe_trainer``: a slow, obviously correct BPE trainer, the reference for fastllm's.
- ``kernel_checks``: tolerances, seeded random inputs and ``assert_close`` for the kernel tests.
- ``tiny_training``: a byte-level tokenizer and a tiny training config for the training tests.
- ``html_pages``: the data an HTML page of ``fastllm viz`` carries, and a headless chromium to open it.
"""
