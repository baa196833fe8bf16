"""Streaming generation: text pieces as tokens are produced, through the tokenizer's incremental decoder."""

from __future__ import annotations

from typing import Iterator, Optional, Sequence, Union

import torch

from .generate import check_request, generate_steps
from .sampling import make_generator
from .stopping import (
    StopCondition,
    find_stop,
    normalize_stop_strings,
    normalize_stop_tokens,
    pending_prefix_len,
)


def encode_prompt(tokenizer, prompt: Union[str, Sequence[int]]) -> list:
    """Token ids of a text prompt (special tokens such as ``<|endoftext|>`` allowed) or an id list."""
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt, allowed_special="all")
    elif isinstance(prompt, torch.Tensor):
        ids = prompt.reshape(-1).tolist()
    else:
        ids = list(prompt)
    if not ids:
        raise ValueError("the prompt is empty: at least one token is needed")
    return ids


def stream_generate(
    model,
    tokenizer,
    prompt: Union[str, Sequence[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    *,
    stop=None,
    stop_tokens="eot",
    seed: Optional[int] = None,
) -> Iterator[str]:
    """Generate from one prompt, yielding text as it is produced.

    Text is decoded incrementally, so a multi-byte character split across tokens is yielded
    whole, once complete. ``stop`` (a string or strings) ends generation; the stop string and
    what follows are not yielded, and text that might begin a stop string is held back until
    it is clear. ``stop_tokens`` defaults to the tokenizer's ``<|endoftext|>``; a stop token's
    own text is not yielded. Arguments are checked when this is called, before any text.
    """
    if isinstance(stop_tokens, str) and stop_tokens == "eot":
        stop_tokens = tokenizer.eot_token
    stops = normalize_stop_tokens(stop_tokens, model.config.vocab_size)
    strings = normalize_stop_strings(stop)
    ids = torch.tensor([encode_prompt(tokenizer, prompt)], dtype=torch.long, device=next(model.parameters()).device)
    check_request(model, ids, max_new_tokens, temperature, top_k, top_p)
    sampling = dict(
        temperature=temperature, top_k=top_k, top_p=top_p, generator=make_generator(seed, ids.device)
    )
    steps = generate_steps(model, ids, None, max_new_tokens, StopCondition(1, stops), sampling)
    return _stream_text(steps, tokenizer.incremental_decoder(), stops, strings)


@torch.no_grad()
def _stream_text(steps, decoder, stops, strings) -> Iterator[str]:
    pending = ""
    try:
        for token in steps:
            token_id = int(token[0])
            if token_id in stops:
                break
            pending += decoder.add(token_id)
            cut = find_stop(pending, strings) if strings else -1
            if cut >= 0:
                if cut:
                    yield pending[:cut]
                return
            keep = pending_prefix_len(pending, strings) if strings else 0
            if len(pending) > keep:
                yield pending[: len(pending) - keep]
                pending = pending[len(pending) - keep :]
    finally:
        steps.close()
    pending += decoder.flush()
    cut = find_stop(pending, strings) if strings else -1
    if cut >= 0:
        pending = pending[:cut]
    if pending:
        yield pending
