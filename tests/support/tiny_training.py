"""Tiny, real set-ups shared by the training tests."""

from __future__ import annotations

from fastllm.tokenizer import ENDOFTEXT as EOT


def byte_tokenizer(merges: int = 0):
    """A real fastllm Tokenizer: the 256 bytes, ``merges`` common pairs, and <|endoftext|>."""
    from fastllm import Tokenizer

    tokens = [bytes([i]) for i in range(256)]
    for pair in (b"th", b"he", b"in", b"er", b"an", b"re", b"on", b"at")[:merges]:
        tokens.append(pair)
    return Tokenizer(tokens, {EOT: len(tokens)}, "gpt2")


def tiny_train_config(data_dir, out, **overrides):
    from fastllm.train.config import build_config

    settings = dict(data=str(data_dir), out=str(out), n_layer=2, n_head=2, n_embd=32, block_size=32,
                    batch_size=4, max_steps=8, lr=3e-3, warmup_steps=2, eval_interval=4, eval_batches=2,
                    checkpoint_interval=4, log_interval=1, device="cpu", kernels="reference",
                    progress=False, export=False, resume=False)
    settings.update(overrides)
    return build_config(overrides=settings)
