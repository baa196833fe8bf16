"""Autoregressive generation: prefill the prompts, then one token per step from a preallocated KV cache."""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch

from .eval_mode import eval_mode
from .kv_cache import KVCache
from .sampling import check_sampling, make_generator, sample_next
from .stopping import StopCondition, normalize_stop_strings, normalize_stop_tokens

Prompts = Union[torch.Tensor, Sequence[int], Sequence[Sequence[int]]]


def _as_id_list(prompt, index: int) -> List[int]:
    if isinstance(prompt, torch.Tensor):
        prompt = prompt.tolist()
    if isinstance(prompt, (str, bytes)) or not isinstance(prompt, Sequence):
        raise TypeError(f"prompt {index} must be a sequence of token ids, got {type(prompt).__name__}")
    for token in prompt:
        if isinstance(token, bool) or not isinstance(token, int):
            raise TypeError(f"prompt {index} holds {token!r}; token ids must be ints")
    if not prompt:
        raise ValueError(f"prompt {index} is empty: at least one token is needed")
    return list(prompt)


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Stack prompts of different lengths, padded on the left; the mask is ``None`` when none is padded."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool, device=device)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long, device=device)
        mask[row, width - len(prompt) :] = True
    return ids, (None if bool(mask.all()) else mask)


class IncrementalForward:
    """The model's next-token logits for a growing batch of sequences.

    With ``use_cache`` the prompts are run once (prefill) into a :class:`KVCache` sized for
    ``max_new_tokens`` more, then each :meth:`push` runs only the new tokens; without it every
    push reruns the whole sequence (the slow reference).
    """

    def __init__(self, model, ids: torch.Tensor, mask: Optional[torch.Tensor], max_new_tokens: int, use_cache: bool = True):
        self.model = model
        self.ids = ids
        self.mask = mask
        self.cache = KVCache.for_model(model, ids.shape[0], ids.shape[1] + max_new_tokens) if use_cache else None
        self.logits = self._run(ids)

    def _run(self, new_ids: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.model.hidden_states(new_ids, self.cache, self.mask)
        return self.model.lm_head(hidden[:, -1]).float()

    def push(self, tokens: torch.Tensor) -> None:
        """Append one token per row and compute the logits that follow it."""
        tokens = tokens.view(-1, 1)
        self.ids = torch.cat([self.ids, tokens], dim=1)
        if self.mask is not None:
            self.mask = torch.cat([self.mask, torch.ones_like(tokens, dtype=torch.bool)], dim=1)
        self.logits = self._run(tokens if self.cache is not None else self.ids)


def prepare_prompts(model, input_ids: Prompts, attention_mask: Optional[torch.Tensor]):
    """-> (ids, mask, prompts-as-lists or None, squeeze) from any accepted prompt form."""
    device = next(model.parameters()).device
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
            raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
        squeeze = input_ids.dim() == 1
        ids = input_ids[None] if squeeze else input_ids
        if ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (seq,) or (batch, seq), got {tuple(input_ids.shape)}")
        if ids.shape[0] == 0 or ids.shape[1] == 0:
            raise ValueError("the prompt is empty: at least one token is needed")
        mask = None
        if attention_mask is not None:
            if tuple(attention_mask.shape) != tuple(ids.shape):
                raise ValueError(
                    f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids {tuple(ids.shape)}"
                )
            mask = attention_mask.to(device=device, dtype=torch.bool)
            if not bool(mask[:, -1].all()):
                raise ValueError("attention_mask: prompts must be padded on the left")
            if bool(mask.all()):
                mask = None
        return ids.to(device=device, dtype=torch.long), mask, None, squeeze
    if attention_mask is not None:
        raise ValueError("attention_mask goes with a tensor of input_ids; lists of prompts are padded automatically")
    if isinstance(input_ids, (str, bytes)) or not isinstance(input_ids, Sequence):
        raise TypeError("input_ids must be a tensor, a list of token ids, or a list of such lists")
    if len(input_ids) == 0:
        raise ValueError("the prompt is empty: at least one token is needed")
    single = not isinstance(input_ids[0], (Sequence, torch.Tensor))
    prompts = [_as_id_list(input_ids, 0)] if single else [_as_id_list(p, i) for i, p in enumerate(input_ids)]
    ids, mask = left_pad(prompts, 0, device)
    return ids, mask, prompts, single


@torch.no_grad()
def generate_steps(
    model,
    ids: torch.Tensor,
    mask: Optional[torch.Tensor],
    max_new_tokens: int,
    stop: StopCondition,
    sampling: dict,
    pad_token_id: int = 0,
    use_cache: bool = True,
) -> Iterator[torch.Tensor]:
    """Yield one new token per row ``(batch,)`` per step until every row stopped or
    ``max_new_tokens`` were produced; rows already stopped get ``pad_token_id``."""
    if max_new_tokens == 0:
        return
    with eval_mode(model):
        forward = IncrementalForward(model, ids, mask, max_new_tokens, use_cache)
        for step in range(max_new_tokens):
            token = sample_next(forward.logits, **sampling)
            finished = torch.tensor(stop.done, device=ids.device)
            token = torch.where(finished, torch.full_like(token, pad_token_id), token)
            yield token
            if all(stop.update(token.tolist())) or step == max_new_tokens - 1:
                return
            forward.push(token)


def check_request(model, ids: torch.Tensor, max_new_tokens: int, temperature, top_k, top_p) -> None:
    """Validate the sampling settings and that prompt + new tokens fit in the context."""
    check_sampling(temperature, top_k, top_p)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    context = model.config.block_size
    if ids.shape[1] > context:
        raise ValueError(f"the prompt has {ids.shape[1]} tokens, longer than the context of {context}")
    if ids.shape[1] + max_new_tokens > context:
        raise ValueError(
            f"prompt ({ids.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) exceeds the context of "
            f"{context}; ask for at most {context - ids.shape[1]} new tokens"
        )


@torch.no_grad()
def generate(
    model,
    input_ids: Prompts,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    *,
    stop_tokens=None,
    stop_strings=None,
    tokenizer=None,
    seed: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    attention_mask: Optional[torch.Tensor] = None,
    pad_token_id: Optional[int] = None,
    use_cache: bool = True,
):
    """Continue prompts by up to ``max_new_tokens`` tokens; returns the ids, prompts included.

    ``input_ids``: a ``(batch, seq)`` tensor (with an optional left-padding ``attention_mask``,
    as ``transformers``), a 1-D tensor, a list of ids, or a list of prompts of different
    lengths. Tensors come back as tensors ``(batch, seq + steps)``, rows that stopped early
    being filled with ``pad_token_id`` (default: the first stop token, else 0); lists come back
    as lists, each prompt with its own continuation.

    ``temperature=0`` is greedy; ``top_k``/``top_p`` filter the tempered distribution.
    ``stop_tokens`` (ids) and ``stop_strings`` (text, needs ``tokenizer``) end a row; the
    token that completes the stop is kept. ``seed`` (or a ``generator``) makes sampling
    reproducible. ``use_cache=False`` recomputes every step (the reference for the cache).
    """
    stops = normalize_stop_tokens(stop_tokens, model.config.vocab_size)
    strings = normalize_stop_strings(stop_strings)
    ids, mask, prompts, squeeze = prepare_prompts(model, input_ids, attention_mask)
    check_request(model, ids, max_new_tokens, temperature, top_k, top_p)
    if pad_token_id is None:
        pad_token_id = min(stops) if stops else 0
    if generator is None:
        generator = make_generator(seed, ids.device)
    stop = StopCondition(ids.shape[0], stops, strings, tokenizer.decode if tokenizer is not None else None)
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    new_tokens = list(generate_steps(model, ids, mask, max_new_tokens, stop, sampling, pad_token_id, use_cache))
    if prompts is not None:
        out = [prompt + generated for prompt, generated in zip(prompts, stop.generated)]
        return out[0] if squeeze else out
    result = torch.cat([ids, torch.stack(new_tokens, dim=1)], dim=1) if new_tokens else ids
    return result[0] if squeeze else result
