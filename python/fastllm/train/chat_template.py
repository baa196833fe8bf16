"""The chat template shared by ``fastllm sft``, ``fastllm dpo``, ``fastllm reward``, ``fastllm rl``,
``fastllm refusals`` and ``fastllm chat``.

Every message is rendered as::

    <|im_start|>{role}\\n{content}<|im_end|>\\n

where ``<|im_start|>`` and ``<|im_end|>`` are special tokens added to the tokenizer (the
model's embeddings are resized to match). Contents are encoded as ordinary text, so a
user typing ``<|im_end|>`` cannot inject a control token. For training, the labels
keep exactly the tokens of assistant contents and the ``<|im_end|>`` that closes them
(so the model learns to stop); every other position is ``IGNORE`` (-100).

Tool calls. An assistant message may carry ``"tool_call": {"name": ..., "input": ...}``; the
next message is then ``{"role": "tool", "content": RESULT}`` and the one after it an assistant
message that continues the same turn. The turn is rendered as::

    <|im_start|>assistant\\n{content}<|tool_call|>{name}({input})<|tool_result|>{RESULT}<|tool_end|>{content}<|im_end|>\\n

Three more special tokens (added only to models that use tools): the model writes the call and
ends it with ``<|tool_result|>``, where generation stops; the runtime runs the tool and appends
its result and ``<|tool_end|>``; the model goes on. The labels cover the call (the model's
decision and its arguments, through ``<|tool_result|>``) and never the result, which the model
does not produce. A conversation's ``tools`` (names) are announced in its system message
(:func:`tools_line`), so a model learns what it may call from its prompt.
"""

from __future__ import annotations

import re

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
TOOL_CALL = "<|tool_call|>"
TOOL_RESULT = "<|tool_result|>"
TOOL_END = "<|tool_end|>"
CHAT_SPECIAL_TOKENS = (IM_START, IM_END)
TOOL_SPECIAL_TOKENS = (TOOL_CALL, TOOL_RESULT, TOOL_END)
ROLES = ("system", "user", "assistant", "tool")
IGNORE = -100

_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\((.*)\)\s*", re.DOTALL)


def with_chat_tokens(tokenizer, tools: bool = False):
    """The tokenizer itself if it has the chat tokens (and, with ``tools``, the tool tokens),
    else a copy with the missing ones appended."""
    wanted = CHAT_SPECIAL_TOKENS + (TOOL_SPECIAL_TOKENS if tools else ())
    missing = [t for t in wanted if t not in tokenizer.special_tokens_set]
    return tokenizer.with_special_tokens(missing) if missing else tokenizer


def has_tool_tokens(tokenizer) -> bool:
    return all(t in tokenizer.special_tokens_set for t in TOOL_SPECIAL_TOKENS)


def special_id(tokenizer, token: str) -> int:
    if token not in tokenizer.special_tokens_set:
        hint = "with_chat_tokens(tokenizer, tools=True)" if token in TOOL_SPECIAL_TOKENS else "with_chat_tokens"
        raise ValueError(f"the tokenizer has no {token} special token (see {hint})")
    ids = tokenizer.encode(token, allowed_special={token})
    return ids[0]


# -- tool calls as text --------------------------------------------------------------------
def format_tool_call(name: str, argument: str) -> str:
    """The text between ``<|tool_call|>`` and ``<|tool_result|>``: ``name(argument)``."""
    return f"{name}({argument})"


def parse_tool_call(text: str) -> tuple[str, str]:
    """``(name, argument)`` of a call written ``name(argument)``; the argument is everything
    between the first ``(`` and the last ``)``. A ValueError says what is wrong."""
    match = _CALL.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ValueError(f"a tool call must look like name(argument), got {shown!r}")
    return match.group(1), match.group(2)


def tools_line(tools) -> str:
    """The system-message line that announces the tools a conversation may call."""
    return "Tools: " + ", ".join(tools) + "."


def check_tools(tools, where: str = "conversation") -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, (list, tuple)) or not all(isinstance(t, str) and _TOOL_NAME.fullmatch(t) for t in tools):
        raise ValueError(f"{where}: \"tools\" must be a list of tool names (letters, digits, _), got {tools!r}")
    return list(tools)


def with_tools(messages: list[dict], tools) -> list[dict]:
    """``messages`` with ``tools`` announced in the system message (one is added when missing)."""
    if not tools:
        return list(messages)
    line = tools_line(tools)
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0], content=f"{messages[0]['content']}\n{line}" if messages[0]["content"] else line)
        return [first] + list(messages[1:])
    return [{"role": "system", "content": line}] + list(messages)


def uses_tools(messages: list[dict]) -> bool:
    return any(m["role"] == "tool" or "tool_call" in m for m in messages)


# -- checking ------------------------------------------------------------------------------
def check_messages(messages, where: str = "conversation") -> list[dict]:
    """Validates ``[{"role": ..., "content": ...}, ...]`` and the tool-call sequence; errors name ``where``."""
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
        previous = messages[i - 1] if i else None
        if "tool_call" in message:
            call = message["tool_call"]
            if role != "assistant":
                raise ValueError(f"{where}: message {i} is a {role} message with a \"tool_call\"; only assistants call tools")
            if not (isinstance(call, dict) and isinstance(call.get("name"), str) and _TOOL_NAME.fullmatch(call["name"])
                    and isinstance(call.get("input"), str)):
                raise ValueError(f"{where}: message {i}: \"tool_call\" must be {{\"name\": NAME, \"input\": TEXT}}")
            if i + 1 == len(messages) or messages[i + 1].get("role") != "tool":
                raise ValueError(f"{where}: message {i} calls a tool but no \"tool\" message with its result follows")
        if role == "tool":
            if previous is None or "tool_call" not in previous:
                raise ValueError(f"{where}: message {i} is a tool result that follows no assistant tool call")
            if i + 1 == len(messages) or messages[i + 1].get("role") != "assistant":
                raise ValueError(f"{where}: message {i} is a tool result with no assistant message after it "
                                 "(the assistant turn must go on and end)")
    return messages


# -- rendering -----------------------------------------------------------------------------
def render(messages: list[dict], tokenizer, add_generation_prompt: bool = False,
           tools=None) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and their labels (``IGNORE`` except on what the assistant writes).

    ``labels[i]`` is either ``ids[i]`` or ``IGNORE``; shift by one for next-token
    training. ``add_generation_prompt`` appends the header of an assistant turn;
    ``tools`` (names) are announced in the system message.
    """
    messages = with_tools(messages, tools)
    start, end = special_id(tokenizer, IM_START), special_id(tokenizer, IM_END)
    newline = tokenizer.encode_ordinary("\n")
    ids: list[int] = []
    labels: list[int] = []

    def add(tokens, trained: bool):
        ids.extend(tokens)
        labels.extend(tokens if trained else [IGNORE] * len(tokens))

    for i, message in enumerate(messages):
        role = message["role"]
        continues_turn = role == "assistant" and i > 0 and messages[i - 1]["role"] == "tool"
        if role == "tool":
            add(tokenizer.encode_ordinary(message["content"]) + [special_id(tokenizer, TOOL_END)], False)
            continue
        if not continues_turn:
            add([start] + tokenizer.encode_ordinary(role + "\n"), False)
        assistant = role == "assistant"
        add(tokenizer.encode_ordinary(message["content"]), assistant)
        if "tool_call" in message:
            call = message["tool_call"]
            add([special_id(tokenizer, TOOL_CALL)]
                + tokenizer.encode_ordinary(format_tool_call(call["name"], call["input"]))
                + [special_id(tokenizer, TOOL_RESULT)], True)
            continue
        add([end], assistant)
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
