"""A stand-in for ``GPT`` in generation tests: its next token is a function of the sequence so far.

It has what ``fastllm.model.generate`` uses (``config``, ``hidden_states``, ``lm_head``,
``new_kv_cache``, a parameter for the device), and its logits put all the mass on
``script(ids)``, so greedy and sampled generation both follow the script exactly.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Callable, Sequence

import torch


class _SeenIds:
    """Plays the KV cache: the real (unpadded) ids of each row so far."""

    def __init__(self, batch: int):
        self.rows = [[] for _ in range(batch)]


class ScriptedModel(torch.nn.Module):
    def __init__(self, vocab_size: int, block_size: int, script: Callable[[Sequence[int]], int]):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size, block_size=block_size)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.script = script
        self.lm_head = torch.nn.Identity()

    def new_kv_cache(self, batch: int, max_len: int) -> _SeenIds:
        return _SeenIds(batch)

    def hidden_states(self, new_ids, cache, mask=None):
        batch, seq = new_ids.shape
        if cache is None:  # the cache-free path reruns the whole sequence
            cache = _SeenIds(batch)
        width = mask.shape[1] if mask is not None else seq
        for row in range(batch):
            for col in range(seq):
                if mask is None or bool(mask[row, width - seq + col]):
                    cache.rows[row].append(int(new_ids[row, col]))
        out = torch.zeros(batch, seq, self.config.vocab_size)
        for row in range(batch):
            out[row, -1, self.script(cache.rows[row])] = 100.0
        return out, []


def calculator_script(tok, expression_of: Callable[[str], str], reply: str = "It is {result}."):
    """A script for a chat model with tool tokens: in each assistant turn, call the calculator on
    ``expression_of(prompt_text)``, then say ``reply`` (``{result}`` copies the tool's result) and end."""
    from fastllm.train.chat_template import IM_END, TOOL_CALL, TOOL_END, TOOL_RESULT, special_id

    call, result, end, im_end = (special_id(tok, t) for t in (TOOL_CALL, TOOL_RESULT, TOOL_END, IM_END))
    header = tok.encode_ordinary("assistant\n")
    before, _, after = reply.partition("{result}")

    def script(ids):
        start = max(i for i in range(len(ids)) if ids[i:i + len(header)] == header) + len(header)
        prompt, new = ids[:start], ids[start:]
        if end not in new:
            plan = [call] + tok.encode_ordinary(f"calculator({expression_of(tok.decode(prompt))})") + [result]
        else:
            at, stop = new.index(result), new.index(end)
            plan = (new[: stop + 1] + tok.encode_ordinary(before) + (new[at + 1: stop] if _ else [])
                    + tok.encode_ordinary(after) + [im_end])
        return plan[len(new)] if len(new) < len(plan) else im_end

    return script
