"""Language-model evaluation on a text: mean loss, perplexity and bits per byte."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import torch

from .generate import eval_mode


@dataclass
class EvalResult:
    loss: float  # mean negative log-likelihood per predicted token, in nats
    perplexity: float  # exp(loss)
    bits_per_byte: float  # total NLL in bits over the UTF-8 bytes of the predicted tokens
    tokens: int  # tokens predicted
    bytes: int  # their UTF-8 bytes

    def to_dict(self) -> dict:
        return asdict(self)


def windows(n_tokens: int, context: int, stride: int):
    """``(start, first, end)`` per window: inputs ``ids[start : end - 1]`` (at most ``context``),
    scoring the predictions of ``ids[first:end]``.

    The first window scores its whole context; each later one scores the next ``stride`` tokens
    with ``context - stride`` tokens of already-scored text before them as extra context. Every
    token after the first is scored exactly once.
    """
    first, end = 1, min(context + 1, n_tokens)
    while first < n_tokens:
        yield max(0, end - 1 - context), first, end
        first, end = end, min(end + stride, n_tokens)


@torch.no_grad()
def evaluate_ids(
    model,
    ids: Sequence[int],
    n_bytes: int,
    context: Optional[int] = None,
    stride: Optional[int] = None,
    batch_size: int = 8,
    progress: bool = True,
) -> EvalResult:
    """Score ``ids`` in windows of ``context`` tokens (default: the model's) moved by ``stride``."""
    context = model.config.block_size if context is None else context
    stride = context if stride is None else stride
    if not 1 <= context <= model.config.block_size:
        raise ValueError(f"context must be in [1, {model.config.block_size}], got {context}")
    if not 1 <= stride <= context:
        raise ValueError(f"stride must be in [1, context={context}], got {stride}")
    if len(ids) < 2:
        raise ValueError(f"the text has {len(ids)} token(s); at least 2 are needed to score one")
    device = next(model.parameters()).device
    data = torch.as_tensor(list(ids), dtype=torch.long)
    spans = list(windows(len(data), context, stride))
    total_nll = 0.0
    total_tokens = 0
    from tqdm.auto import tqdm

    with eval_mode(model):
        for first in tqdm(range(0, len(spans), batch_size), desc="eval", unit="batch", disable=not progress):
            batch = spans[first : first + batch_size]
            width = max(end - 1 - start for start, _, end in batch)
            inputs = torch.zeros((len(batch), width), dtype=torch.long)
            targets = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, (start, scored, end) in enumerate(batch):
                inputs[row, : end - 1 - start] = data[start : end - 1]
                targets[row, scored - 1 - start : end - 1 - start] = data[scored:end]
            count = int((targets != -100).sum())
            loss = model(inputs.to(device), targets.to(device)).loss
            total_nll += float(loss) * count
            total_tokens += count
    mean = total_nll / total_tokens
    return EvalResult(
        loss=mean,
        perplexity=math.exp(mean),
        bits_per_byte=total_nll / math.log(2) / max(n_bytes, 1),
        tokens=total_tokens,
        bytes=n_bytes,
    )


def evaluate_text(model, tokenizer, text: str, **options) -> EvalResult:
    """Loss, perplexity and bits per byte of ``model`` on ``text`` (see :func:`evaluate_ids`)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    ids = tokenizer.encode(text, allowed_special="all")
    if len(ids) < 2:
        raise ValueError(f"the text has {len(ids)} token(s); at least 2 are needed to score one")
    n_bytes = len(tokenizer.decode_bytes(ids[1:]))
    return evaluate_ids(model, ids, n_bytes, **options)
