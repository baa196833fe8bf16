"""Fixtures for the training tests: real tokenizers with tiny vocabularies, tiny corpora.

The kernels' reference (PyTorch) path is forced: the Triton interpreter the root
conftest enables on CPU-only machines is far too slow for training loops. Torch runs
one thread: these models are tiny, and on a loaded 2-core machine more threads made a
training step ~15x slower (measured), not faster.
"""

from __future__ import annotations

import pytest

from tests.support.tiny_training import byte_tokenizer


@pytest.fixture(scope="module", autouse=True)
def fast_cpu_training():
    """Reference kernels and one torch thread, for each test module here only (restored
    after it, so other test directories keep testing the Triton kernels)."""
    import torch

    patch = pytest.MonkeyPatch()
    patch.setenv("FASTLLM_KERNELS", "reference")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
    patch.undo()


@pytest.fixture(scope="session")
def tokenizer():
    return byte_tokenizer(merges=8)


@pytest.fixture(scope="session")
def documents():
    """About 60 KB of real English prose from the default corpus (no shared data needed)."""
    from fastllm.demos.pretraining import pydoc_topics

    docs, total = [], 0
    for doc in pydoc_topics() or ["The quick brown fox jumps over the lazy dog.\n" * 200] * 20:
        docs.append(doc[:6000])
        total += len(docs[-1])
        if total > 60_000:
            break
    return docs


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, tokenizer, documents):
    from fastllm.train.prepare import prepare_documents

    out = tmp_path_factory.mktemp("data")
    prepare_documents(documents, tokenizer, out, chunk_bytes=2000, progress=False)
    return out


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory, tokenizer):
    """A tiny GPT saved with save_pretrained (random weights) and its tokenizer."""
    import torch

    from fastllm.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.n_vocab, block_size=128, n_layer=2, n_head=2, n_embd=32))
    out = tmp_path_factory.mktemp("pretrained")
    model.save_pretrained(out, tokenizer=tokenizer)
    return out
