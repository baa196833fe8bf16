"""What SFT and DPO share: loading a pretrained model, batching (ids, labels) pairs,
and a small optimization loop with AdamW, warmup+cosine, clipping, a JSONL log and a
progress bar."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from fastllm import options

from .chat_template import IGNORE
from .metrics import JsonlLog
from .optim import WarmupCosine, check_finite, make_adamw, optimizer_step
from .runtime import resolve_device

Example = tuple[list[int], list[int]]  # (ids, labels), labels IGNORE where not trained


@dataclass
class FinetuneConfig:
    """Settings shared by ``fastllm sft`` and ``fastllm dpo``."""

    model: str
    data: str
    out: str = "out/finetune"
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    grad_clip: float = 1.0
    seed: int = 1337
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        options.check_fields(self, FINETUNE_CHECKS)


# Every setting's check (fastllm.options); the CLI flags use the same ones.
FINETUNE_CHECKS = {
    "epochs": options.positive_float,
    "max_steps": options.optional(options.positive_int),
    "batch_size": options.positive_int,
    "lr": options.positive_float,
    "weight_decay": options.non_negative_float,
    "warmup_steps": options.non_negative_int,
    "grad_clip": options.non_negative_float,
    "seed": options.integer,
    "device": options.device,
}


def load_model_and_tokenizer(model_dir: str | Path, device: str = "auto"):
    from fastllm import Tokenizer
    from fastllm.model import GPT

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    dev = resolve_device(device)
    model = GPT.from_pretrained(model_dir, device=dev)
    tokenizer = Tokenizer.from_pretrained(model_dir)
    return model, tokenizer, dev


def fit_vocab(model, tokenizer) -> None:
    """Grows the embeddings when the tokenizer gained (chat) special tokens."""
    if tokenizer.n_vocab > model.config.vocab_size:
        model.resize_token_embeddings(tokenizer.n_vocab)


def check_length(example: Example, block_size: int, where: str) -> Example:
    """A sequence of n tokens trains on n - 1 positions, which must fit the context."""
    if len(example[0]) - 1 > block_size:
        raise ValueError(
            f"{where}: {len(example[0])} tokens, longer than the model's context of {block_size} "
            f"(+1 for the shifted target); shorten it or use a model with a longer context"
        )
    if len(example[0]) < 2:
        raise ValueError(f"{where}: too short to train on ({len(example[0])} tokens)")
    return example


def collate(examples: Sequence[Example], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs and shifted targets: ``x = ids[:-1]``, ``y = labels[1:]``."""
    width = max(len(ids) for ids, _ in examples) - 1
    x = torch.full((len(examples), width), pad_id, dtype=torch.long)
    y = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, (ids, labels) in enumerate(examples):
        n = len(ids) - 1
        x[row, :n] = torch.tensor(ids[:-1])
        y[row, :n] = torch.tensor(labels[1:])
    return x.to(device), y.to(device)


def shuffled_batches(items: Sequence, batch_size: int, seed: int) -> Iterator[list]:
    """Endless batches, reshuffled every epoch with a seeded generator."""
    rng = random.Random(seed)
    order = list(range(len(items)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield [items[i] for i in order[start : start + batch_size]]


def steps_for(n_items: int, batch_size: int, epochs: float, max_steps: int | None) -> int:
    return max_steps if max_steps else max(1, math.ceil(epochs * math.ceil(n_items / batch_size)))


def optimize(
    model,
    batches: Iterator,
    loss_fn: Callable[[object], tuple[torch.Tensor, dict]],
    *,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    grad_clip: float = 1.0,
    log: JsonlLog | None = None,
    desc: str = "training",
    progress: bool = True,
) -> list[dict]:
    """Runs ``steps`` optimizer steps of ``loss_fn(next(batches))``; returns the per-step metrics."""
    from tqdm.auto import tqdm

    optimizer = make_adamw(model, lr, weight_decay)
    schedule = WarmupCosine(lr, lr / 10, min(warmup_steps, steps), steps)
    history = []
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress, dynamic_ncols=True) as bar:
        for step in range(steps):
            loss, metrics = loss_fn(next(batches))
            loss.backward()
            optimizer_step(model, optimizer, schedule(step), grad_clip)
            record = {"step": step + 1, "loss": float(loss.detach()), "lr": schedule(step), **metrics}
            check_finite(record["loss"], step + 1)
            history.append(record)
            if log is not None:
                log.write(**record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k not in ("step", "lr")})
            bar.update(1)
    return history
