"""Reward model (``fastllm reward``): a GPT with a scalar head, trained on preference pairs.

The input is DPO's (``{"prompt", "chosen", "rejected"}`` JSONL, :mod:`fastllm.train.dpo`). A
sequence's score is a linear head on the final hidden state of its last token (the reply's end
token), and training minimises the Bradley-Terry loss

    -log sigmoid(r(chosen) - r(rejected))

i.e. the model of P(chosen preferred) = sigmoid(r(chosen) - r(rejected)). Pairwise accuracy
(the share of pairs where the chosen reply scores higher) is reported on held-out pairs before
and after training. The directory is a GPT checkpoint (``save_pretrained``: config, weights,
tokenizer) plus ``reward_head.safetensors``; :meth:`RewardModel.from_pretrained` reads it back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastllm import options
from fastllm.files import hold_directory, write_bytes_atomic

from .dpo import load_preferences, preference_tokenizer
from .finetune import (Example, FinetuneConfig, fit_vocab, load_model_and_tokenizer, optimize, shuffled_batches,
                       steps_for)
from .metrics import JsonlLog
from .runtime import autocast

HEAD_FILE = "reward_head.safetensors"
HEAD_FORMAT = "fastllm-reward-head"


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Per-pair ``-log sigmoid(chosen - rejected)`` (scores shaped ``(batch,)``)."""
    return -F.logsigmoid(chosen - rejected)


class RewardModel(nn.Module):
    """``body`` (a GPT) and a linear head scoring each sequence at its last token."""

    def __init__(self, body) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.config.n_embd, 1, device=body.transformer.wte.weight.device)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def config(self):
        return self.body.config

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Scores ``(batch,)`` of right-padded sequences ``idx`` whose real lengths are ``lengths``
        (causal attention: padding after a sequence never reaches its last token)."""
        hidden, _ = self.body.hidden_states(idx)
        last = hidden[torch.arange(idx.shape[0], device=idx.device), lengths - 1]
        return self.head(last).squeeze(-1)

    def save_pretrained(self, directory, tokenizer=None) -> Path:
        from safetensors.torch import save

        out = self.body.save_pretrained(directory, tokenizer=tokenizer)
        tensors = {"weight": self.head.weight.detach().cpu().contiguous(), "bias": self.head.bias.detach().cpu()}
        write_bytes_atomic(Path(out) / HEAD_FILE, save(tensors, metadata={"format": HEAD_FORMAT}))
        return Path(out)

    @classmethod
    def from_pretrained(cls, directory, device=None) -> "RewardModel":
        from safetensors import SafetensorError
        from safetensors import safe_open

        from fastllm.model import GPT

        directory = Path(directory)
        head_file = directory / HEAD_FILE
        if not directory.is_dir():
            raise FileNotFoundError(f"reward model directory {directory} does not exist")
        if not head_file.is_file():
            raise ValueError(f"{directory} is not a reward model (no {HEAD_FILE}): train one with `fastllm reward`")
        body = GPT.from_pretrained(directory)
        model = cls(body)
        try:
            with safe_open(str(head_file), framework="pt") as handle:
                if (handle.metadata() or {}).get("format") != HEAD_FORMAT:
                    raise ValueError(f"{head_file} is not a fastllm reward head")
                state = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"{head_file} is not a readable safetensors file: {exc}") from None
        expected = {"weight": (1, body.config.n_embd), "bias": (1,)}
        if {k: tuple(v.shape) for k, v in state.items()} != expected:
            raise ValueError(f"{head_file} holds {sorted(state)} shaped "
                             f"{[tuple(v.shape) for v in state.values()]}, expected {expected}")
        model.head.load_state_dict({k: v.float() for k, v in state.items()})
        model.eval()
        return model.to(device) if device is not None else model


def pad_right(sequences: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(batch, longest)`` ids and the lengths."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
    return ids.to(device), torch.tensor([len(s) for s in sequences], device=device)


@torch.no_grad()
def score(model: RewardModel, sequences: Sequence[Sequence[int]], batch_size: int = 32) -> torch.Tensor:
    """Scores of whole sequences (prompt and reply ids), on the CPU, ``(len(sequences),)``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores = []
    for start in range(0, len(sequences), batch_size):
        ids, lengths = pad_right(sequences[start: start + batch_size], 0, device)
        with autocast(device):
            scores.append(model(ids, lengths).float().cpu())
    model.train(was_training)
    return torch.cat(scores) if scores else torch.zeros(0)


def pairwise_accuracy(model: RewardModel, pairs: Sequence[tuple[Example, Example]], batch_size: int = 32) -> float:
    """Share of pairs whose chosen sequence scores strictly higher than the rejected one."""
    if not pairs:
        raise ValueError("no pairs to measure the accuracy on")
    chosen = score(model, [c[0] for c, _ in pairs], batch_size)
    rejected = score(model, [r[0] for _, r in pairs], batch_size)
    return float((chosen > rejected).float().mean())


def split_held_out(pairs: list, fraction: float, seed: int) -> tuple[list, list]:
    """``(train, held_out)``: a seeded random ``fraction`` of the pairs held out (at least one when
    ``fraction > 0``, and at least one left to train on)."""
    if fraction <= 0:
        return pairs, []
    if len(pairs) < 2:
        raise ValueError(f"{len(pairs)} pair(s): too few to hold any out; pass --val-data or --val-fraction 0")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_held = min(len(pairs) - 1, max(1, round(fraction * len(pairs))))
    held = set(order[:n_held])
    return [p for i, p in enumerate(pairs) if i not in held], [pairs[i] for i in sorted(held)]


@dataclass
class RewardConfig(FinetuneConfig):
    out: str = "out/reward"
    lr: float = 5e-5
    batch_size: int = 8
    val_fraction: float = 0.1  # held-out share of --data when no --val-data is given
    val_data: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.val_fraction = options.unit_interval("val_fraction", self.val_fraction)


def run_reward(cfg: RewardConfig) -> dict:
    """Trains a reward model from ``cfg.model`` into ``cfg.out``, which it holds for the run."""
    with hold_directory(cfg.out):
        return _run_reward(cfg)


def _run_reward(cfg: RewardConfig) -> dict:
    body, tokenizer, device = load_model_and_tokenizer(cfg.model, cfg.device)
    tokenizer = preference_tokenizer(cfg.data, tokenizer)
    pairs = load_preferences(cfg.data, tokenizer, body.config.block_size)
    if cfg.val_data:
        train_pairs, held_out = pairs, load_preferences(cfg.val_data, tokenizer, body.config.block_size)
    else:
        train_pairs, held_out = split_held_out(pairs, cfg.val_fraction, cfg.seed)
    fit_vocab(body, tokenizer)
    torch.manual_seed(cfg.seed)
    model = RewardModel(body).to(device)
    accuracy_before = pairwise_accuracy(model, held_out) if held_out else None
    model.train()

    def loss_fn(batch):
        n = len(batch)
        ids, lengths = pad_right([c[0] for c, _ in batch] + [r[0] for _, r in batch], 0, device)
        with autocast(device):
            scores = model(ids, lengths).float()
        losses = bradley_terry_loss(scores[:n], scores[n:])
        margin = (scores[:n] - scores[n:]).detach()
        return losses.mean(), {"accuracy": float((margin > 0).float().mean()), "margin": float(margin.mean())}

    steps = steps_for(len(train_pairs), cfg.batch_size, cfg.epochs, cfg.max_steps)
    out = Path(cfg.out)
    history = optimize(
        model, shuffled_batches(train_pairs, cfg.batch_size, cfg.seed), loss_fn, steps=steps, lr=cfg.lr,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, grad_clip=cfg.grad_clip,
        log=JsonlLog(out / "log.jsonl"), desc="reward", progress=cfg.progress,
    )
    model.eval()
    accuracy_after = pairwise_accuracy(model, held_out) if held_out else None
    JsonlLog(out / "log.jsonl").write(event="held_out", pairs=len(held_out), accuracy_before=accuracy_before,
                                      accuracy_after=accuracy_after)
    model.save_pretrained(out, tokenizer=tokenizer)
    return {"steps": steps, "history": history, "pairs": len(train_pairs), "held_out": len(held_out),
            "accuracy_before": accuracy_before, "accuracy_after": accuracy_after, "model_dir": str(out)}
