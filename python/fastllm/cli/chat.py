"""``fastllm chat``: a terminal conversation with a fine-tuned model, streamed token by token.

The conversation is re-rendered with the chat template each turn; when it no longer
fits the context, the oldest turns (never the system message) are dropped.
"""

from __future__ import annotations

import sys
from typing import Callable

from fastllm.train.chat_template import IM_END, render, special_id

PROMPT = "you> "
REPLY = "assistant> "


def load_chat_model(model_dir: str, device: str = "auto"):
    from fastllm.train.finetune import load_model_and_tokenizer

    model, tokenizer, _ = load_model_and_tokenizer(model_dir, device)
    if IM_END not in tokenizer.special_tokens_set:
        raise ValueError(f"{model_dir} has no chat template tokens: fine-tune it with `fastllm sft` first")
    return model.eval(), tokenizer


def fit_context(messages: list[dict], tokenizer, block_size: int, reserve: int) -> tuple[list[int], list[dict]]:
    """The prompt ids, dropping the oldest non-system turns until ``reserve`` new tokens fit."""
    messages = list(messages)
    while True:
        ids, _ = render(messages, tokenizer, add_generation_prompt=True)
        if len(ids) + reserve <= block_size:
            return ids, messages
        first = 1 if messages and messages[0]["role"] == "system" else 0
        if len(messages) - first <= 1:
            raise ValueError(
                f"the message needs {len(ids)} tokens plus {reserve} for the reply, more than the "
                f"context of {block_size}: write a shorter message or lower --max-new-tokens"
            )
        del messages[first]


def reply(model, tokenizer, messages: list[dict], max_new_tokens: int = 256,
          write: Callable[[str], None] = None, **sampling) -> tuple[str, list[dict]]:
    """Streams the assistant's answer to ``messages``; returns it and the (possibly trimmed) history."""
    from fastllm.model import stream_generate

    write = write or (lambda s: None)
    reserve = min(max_new_tokens, model.config.block_size // 2)
    ids, messages = fit_context(messages, tokenizer, model.config.block_size, reserve)
    stops = [special_id(tokenizer, IM_END)] + ([tokenizer.eot_token] if tokenizer.eot_token is not None else [])
    pieces = []
    for piece in stream_generate(model, tokenizer, ids, reserve, stop_tokens=stops, **sampling):
        pieces.append(piece)
        write(piece)
    return "".join(pieces), messages


def chat_loop(model, tokenizer, system: str | None = None, max_new_tokens: int = 256,
              input_fn: Callable[[str], str] = input, output=None, **sampling) -> list[dict]:
    """Reads user lines until EOF or ``/exit``; ``/reset`` starts over. Returns the conversation.

    The settings are checked before the first turn (a ValueError); a turn that cannot be
    answered (a message longer than the context) is reported and dropped, and the
    conversation goes on.
    """
    from fastllm.model.generate import check_sampling

    output = output or sys.stdout
    check_sampling(sampling.get("temperature", 1.0), sampling.get("top_k"), sampling.get("top_p"))
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")

    def write(text: str) -> None:
        output.write(text)
        output.flush()

    start = [{"role": "system", "content": system}] if system else []
    if start:
        fit_context(start + [{"role": "user", "content": ""}], tokenizer, model.config.block_size, 1)
    messages = list(start)
    write("chatting with the model: /reset starts over, /exit or Ctrl-D quits\n")
    while True:
        try:
            line = input_fn(PROMPT)
        except EOFError:
            write("\n")
            break
        if line.strip() == "/exit":
            break
        if line.strip() == "/reset":
            messages = list(start)
            continue
        if not line.strip():
            continue
        try:
            fit_context(messages + [{"role": "user", "content": line}], tokenizer, model.config.block_size,
                        min(max_new_tokens, model.config.block_size // 2))
        except ValueError as exc:
            write(f"(not sent: {exc})\n")
            continue
        messages.append({"role": "user", "content": line})
        write(REPLY)
        answer, messages = reply(model, tokenizer, messages, max_new_tokens, write, **sampling)
        write("\n")
        messages.append({"role": "assistant", "content": answer})
    return messages
