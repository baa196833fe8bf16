"""``fastllm chat``: a terminal conversation with a fine-tuned model, streamed token by token.

The conversation is re-rendered with the chat template each turn; when it no longer
fits the context, the oldest turns (never the system message) are dropped. With tools
(``--tools calculator``) they are announced in the system message, and when the model calls
one, generation stops there, the tool runs, and its result is shown (``[call -> result]``)
and appended for the model to go on.
"""

from __future__ import annotations

import sys
from typing import Callable

from fastllm.train.chat_template import IM_END, has_tool_tokens, render, special_id

PROMPT = "you> "
REPLY = "assistant> "


def load_chat_model(model_dir: str, device: str = "auto", tools=None):
    from fastllm.train.finetune import load_model_and_tokenizer
    from fastllm.train.tools import get_tools

    get_tools(tools)  # an unknown name is refused before the model loads
    model, tokenizer, _ = load_model_and_tokenizer(model_dir, device)
    if IM_END not in tokenizer.special_tokens_set:
        raise ValueError(f"{model_dir} has no chat template tokens: fine-tune it with `fastllm sft` first")
    if tools and not has_tool_tokens(tokenizer):
        raise ValueError(f"{model_dir} has no tool-call tokens: fine-tune it (fastllm sft) on conversations "
                         "with tool calls before chatting with --tools")
    return model.eval(), tokenizer


def fit_context(messages: list[dict], tokenizer, block_size: int, reserve: int,
                tools=None) -> tuple[list[int], list[dict]]:
    """The prompt ids, dropping the oldest non-system turns until ``reserve`` new tokens fit."""
    messages = list(messages)
    while True:
        ids, _ = render(messages, tokenizer, add_generation_prompt=True, tools=tools)
        if len(ids) + reserve <= block_size:
            return ids, messages
        first = 1 if messages and messages[0]["role"] == "system" else 0
        # a turn is a user message and everything up to the next one (tool calls included)
        users = [i for i, m in enumerate(messages) if m["role"] == "user" and i >= first]
        if len(users) <= 1:
            raise ValueError(
                f"the message needs {len(ids)} tokens plus {reserve} for the reply, more than the "
                f"context of {block_size}: write a shorter message or lower --max-new-tokens"
            )
        del messages[first: users[1]]


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


def reply_with_tools(model, tokenizer, messages: list[dict], tools, max_new_tokens: int = 256,
                     write: Callable[[str], None] = None, temperature: float = 1.0, top_k=None, top_p=None,
                     seed=None) -> tuple[list[dict], list[dict]]:
    """Like :func:`reply`, running the model's tool calls; returns the turn's messages (assistant
    messages and tool results) and the (possibly trimmed) history."""
    from fastllm.model.generate import make_generator
    from fastllm.train.tools import generate_with_tools, get_tools, split_completion

    reserve = min(max_new_tokens, model.config.block_size // 2)
    ids, messages = fit_context(messages, tokenizer, model.config.block_size, reserve, tools)
    generator = make_generator(seed, next(model.parameters()).device)
    [completion] = generate_with_tools(model, tokenizer, [ids], get_tools(tools), reserve, temperature, top_k, top_p,
                                       generator=generator, stream=write or (lambda s: None))
    return split_completion(completion.ids, tokenizer), messages


def chat_loop(model, tokenizer, system: str | None = None, max_new_tokens: int = 256,
              input_fn: Callable[[str], str] = input, output=None, tools=None, **sampling) -> list[dict]:
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
    if start or tools:
        fit_context(start + [{"role": "user", "content": ""}], tokenizer, model.config.block_size, 1, tools)
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
                        min(max_new_tokens, model.config.block_size // 2), tools)
        except ValueError as exc:
            write(f"(not sent: {exc})\n")
            continue
        messages.append({"role": "user", "content": line})
        write(REPLY)
        if tools:
            turn, messages = reply_with_tools(model, tokenizer, messages, tools, max_new_tokens, write, **sampling)
            messages.extend(turn)
        else:
            answer, messages = reply(model, tokenizer, messages, max_new_tokens, write, **sampling)
            messages.append({"role": "assistant", "content": answer})
        write("\n")
    return messages
