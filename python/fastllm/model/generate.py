"""Generation: sampling, stopping rules, the KV-cache decoding loop and streaming text.

``generate`` prefills the prompts once into the model's preallocated KV cache, then runs one
token per step; ``stream_generate`` yields text through the tokenizer's incremental decoder.
This module works on any model with ``GPT``'s interface and imports no model code.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch

Prompts = Union[torch.Tensor, Sequence[int], Sequence[Sequence[int]]]


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run a block with dropout off, then restore the model's training flag."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


# -- sampling ----------------------------------------------------------------------------
def check_sampling(temperature: float, top_k: Optional[int], top_p: Optional[float]) -> None:
    """Raise ValueError/TypeError for settings that do not describe a distribution."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
            raise TypeError(f"top_p must be None or a number in (0, 1], got {type(top_p).__name__}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def filter_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Set every logit below the k-th largest of its row to -inf (ties with the k-th stay)."""
    if top_k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``top_p``."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits.to(torch.promote_types(sorted_logits.dtype, torch.float32)), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # probability of the strictly better tokens
    drop_sorted = mass_before >= top_p
    drop_sorted[..., 0] = False  # the most likely token always survives
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def make_generator(seed: Optional[int], device: torch.device) -> Optional[torch.Generator]:
    """A generator seeded with ``seed`` on ``device`` (``None``: use torch's global RNG)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """One token id per row of ``logits`` ``(batch, vocab)``; ``temperature == 0`` is greedy."""
    if temperature == 0:
        return torch.argmax(logits, dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# -- stopping ----------------------------------------------------------------------------
def normalize_stop_tokens(stop_tokens: Union[None, int, Iterable[int]], vocab_size: int) -> frozenset:
    if stop_tokens is None:
        return frozenset()
    if isinstance(stop_tokens, int) and not isinstance(stop_tokens, bool):
        stop_tokens = [stop_tokens]
    tokens = list(stop_tokens)
    for token in tokens:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size:
            raise ValueError(f"stop token {token!r} is not a token id in [0, {vocab_size})")
    return frozenset(tokens)


def normalize_stop_strings(stop_strings: Union[None, str, Iterable[str]]) -> Tuple[str, ...]:
    if stop_strings is None:
        return ()
    if isinstance(stop_strings, str):
        stop_strings = [stop_strings]
    strings = tuple(stop_strings)
    for s in strings:
        if not isinstance(s, str) or not s:
            raise ValueError(f"stop strings must be non-empty str, got {s!r}")
    return strings


def find_stop(text: str, stop_strings: Sequence[str]) -> int:
    """Index of the earliest stop string in ``text``, or -1."""
    hits = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return min(hits) if hits else -1


def pending_prefix_len(text: str, stop_strings: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could still grow into a stop string."""
    longest = 0
    for s in stop_strings:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


class StopCondition:
    """Tracks, row by row, whether a batch being generated has stopped.

    A row stops after producing one of ``stop_tokens`` or once the text of its generated tokens
    contains one of ``stop_strings`` (decoded with ``decode``); the token that completes the
    stop is kept, as ``transformers`` does.
    """

    def __init__(
        self,
        batch: int,
        stop_tokens: frozenset = frozenset(),
        stop_strings: Tuple[str, ...] = (),
        decode: Optional[Callable[[List[int]], str]] = None,
    ) -> None:
        if stop_strings and decode is None:
            raise ValueError("stop strings need a tokenizer to decode the generated tokens")
        self.stop_tokens = stop_tokens
        self.stop_strings = stop_strings
        self.decode = decode
        self.generated: List[List[int]] = [[] for _ in range(batch)]
        self.done = [False] * batch

    def update(self, new_tokens: Sequence[int]) -> List[bool]:
        """Record one new token per row (ignored for rows already done); return ``done``."""
        for row, token in enumerate(new_tokens):
            if self.done[row]:
                continue
            self.generated[row].append(int(token))
            if token in self.stop_tokens:
                self.done[row] = True
            elif self.stop_strings and find_stop(self.decode(self.generated[row]), self.stop_strings) >= 0:
                self.done[row] = True
        return self.done


# -- the decoding loop -------------------------------------------------------------------
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
        self.cache = model.new_kv_cache(ids.shape[0], ids.shape[1] + max_new_tokens) if use_cache else None
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


# -- streaming ---------------------------------------------------------------------------
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
