"""Fixtures for the model tests: a tiny byte-level tokenizer, tiny random GPT-2s in HF's layout.

The kernels' reference path is forced for speed (the root conftest turns on Triton's
interpreter when there is no GPU); the kernels tests cover the Triton path.
"""

from __future__ import annotations

import pytest
import torch

from fastllm import Tokenizer
from fastllm.kernels import force_backend
from fastllm.tokenizer import ENDOFTEXT

MERGES = [b"th", b"he", b"the", b" the", b"in", b"er", b" a", b"an", b"\xc3\xa9"]
EOT = ENDOFTEXT


@pytest.fixture(autouse=True)
def reference_kernels():
    with force_backend("reference"):
        yield


def byte_tokenizer() -> Tokenizer:
    """256 single bytes, a few merges, and <|endoftext|>: multi-byte characters span tokens."""
    tokens = [bytes([b]) for b in range(256)] + MERGES
    return Tokenizer(tokens, {EOT: len(tokens)}, "gpt2")


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return byte_tokenizer()


def tiny_hf_config(vocab_size: int, **overrides):
    from transformers import GPT2Config

    settings = dict(
        n_layer=2, n_embd=64, n_head=4, n_positions=64, vocab_size=vocab_size,
        bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1,
        # larger than GPT-2's 0.02 so that a random model's greedy choices vary from step to step
        initializer_range=0.3,
    )
    settings.update(overrides)
    return GPT2Config(**settings)


@pytest.fixture(scope="session")
def hf_model(tokenizer):
    from transformers import GPT2LMHeadModel

    torch.manual_seed(1234)
    return GPT2LMHeadModel(tiny_hf_config(tokenizer.n_vocab)).eval()


@pytest.fixture(scope="session")
def hf_dir(hf_model, tokenizer, tmp_path_factory):
    """A checkpoint directory written by ``transformers`` plus fastllm's tokenizer.json."""
    path = tmp_path_factory.mktemp("hf_gpt2")
    hf_model.save_pretrained(path)
    tokenizer.to_hf_json(path / "tokenizer.json")
    return path


@pytest.fixture()
def model(hf_dir):
    from fastllm.model import GPT

    return GPT.from_pretrained(hf_dir)


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the session (Debian's, driven by Playwright); skipped, saying
    why, where there is none."""
    from tests.support.html_pages import launch, why_no_browser

    reason = why_no_browser()
    if reason:
        pytest.skip(f"no browser for the page tests: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()
