"""The chat template shared by ``fastllm sft``, ``fastllm dpo`` and ``fastllm chat``.

Every message is rendered as::

    <|im_start|>{role}\\n{content}<|im_end|>\\n

where ``<|im_start|>`` and ``<|im_end|>`` are special tokens added to the tokenizer (the
model's embeddings are resized to match). Contents are encoded as ordinary text, so a
user typing ``<|im_end|>`` cannot inject a control token. For training, the labels
keep exactly the tokens of assistant contents and the ``<|im_end|>`` that closes them
(so the model learns to stop); every other position is ``IGNORE`` (-100).
"""

from __future__ import annotations

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
CHAT_SPECIAL_TOKENS = (IM_START, IM_END)
ROLES = ("system", "user", "assistant")
IGNORE = -100


def with_chat_tokens(tokenizer):
    """The tokenizer itself if it has the chat tokens, else a copy with them appended."""
    missing = [t for t in CHAT_SPECIAL_TOKENS if t not in tokenizer.special_tokens_set]
    return tokenizer.with_special_tokens(missing) if missing else tokenizer


def special_id(tokenizer, token: str) -> int:
    if token not in tokenizer.special_tokens_set:
        raise ValueError(f"the tokenizer has no {token} special token (see with_chat_tokens)")
    ids = tokenizer.encode(token, allowed_special={token})
    return ids[0]


def check_messages(messages, where: str = "conversation") -> list[dict]:
    """Validates ``[{"role": ..., "content": ...}, ...]``; errors name ``where``."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: \"messages\" must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"{where}: message {i} is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"{where}: message {i} has role {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"{where}: message {i} has no string \"content\"")
    return messages


def render(messages: list[dict], tokenizer, add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and their labels (``IGNORE`` except on assistant replies).

    ``labels[i]`` is either ``ids[i]`` or ``IGNORE``; shift by one for next-token
    training. ``add_generation_prompt`` appends the header of an assistant turn.
    """
    start, end = special_id(tokenizer, IM_START), special_id(tokenizer, IM_END)
    newline = tokenizer.encode_ordinary("\n")
    ids: list[int] = []
    labels: list[int] = []

    def add(tokens, trained: bool):
        ids.extend(tokens)
        labels.extend(tokens if trained else [IGNORE] * len(tokens))

    for message in messages:
        assistant = message["role"] == "assistant"
        add([start] + tokenizer.encode_ordinary(message["role"] + "\n"), False)
        add(tokenizer.encode_ordinary(message["content"]) + [end], assistant)
        add(newline, False)
    if add_generation_prompt:
        add(generation_prompt(tokenizer), False)
    return ids, labels


def generation_prompt(tokenizer) -> list[int]:
    """The tokens that open an assistant turn."""
    return [special_id(tokenizer, IM_START)] + tokenizer.encode_ordinary("assistant\n")


def plain_text(messages: list[dict]) -> str:
    """A conversation as plain text for reading or embedding (no special tokens): one
    ``role: content`` paragraph per message."""
    return "\n\n".join(f"{message['role']}: {message['content']}" for message in messages)
