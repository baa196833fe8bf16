"""The end-to-end demonstrations behind ``fastllm demo``: applications built on the library, kept
apart from it.

``pretraining``: raw text -> tokenizer -> shards -> a small GPT (``fastllm demo``).
``assistant``: from nothing to a small assistant on synthetic data, measuring each post-training
stage on held-out items (``fastllm demo assistant``).
"""
