"""Tools a chat model can call through the template's special tokens, and generation that runs them.

A tool is a function from the call's argument text to a result text; it raises ``ToolError``
for an argument it refuses. One ships: ``calculator``, arithmetic read by a small
recursive-descent parser (numbers, ``+ - * /``, parentheses, signs) and computed exactly with
fractions. It never hands the text to ``eval``: anything but arithmetic is refused.

:func:`generate_with_tools` continues chat prompts (a batch of them) and, whenever a row ends a
call with ``<|tool_call|>...<|tool_result|>``, runs the tool, appends ``RESULT<|tool_end|>`` and
lets the row go on; a failed call gets ``error: ...`` as its result, so the model sees it.
Torch is imported only there: the CLI reads the tool names without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Callable, Mapping, Sequence

from .chat_template import (IM_END, TOOL_CALL, TOOL_END, TOOL_RESULT, has_tool_tokens, parse_tool_call,
                            special_id)


class ToolError(ValueError):
    """A tool refused its argument; the message says why."""


# -- the calculator ------------------------------------------------------------------------
MAX_EXPRESSION_CHARS = 200
MAX_NUMBER_DIGITS = 40
MAX_DEPTH = 40  # nested parentheses and signs: bounds the parser's recursion
DECIMAL_PLACES = 10
_OPERATORS = "+-*/()"


def _tokens(text: str) -> list[tuple[str, int]]:
    """``(token, position)``: numbers and single-character operators; anything else is refused."""
    tokens, i = [], 0
    while i < len(text):
        char = text[i]
        if char in " \t":
            i += 1
        elif char in _OPERATORS:
            tokens.append((char, i))
            i += 1
        elif char.isascii() and (char.isdigit() or char == "."):
            start = i
            while i < len(text) and text[i].isascii() and (text[i].isdigit() or text[i] == "."):
                i += 1
            number = text[start:i]
            if number.count(".") > 1 or number == ".":
                raise ToolError(f"calculator: {number!r} at position {start} is not a number")
            if len(number) > MAX_NUMBER_DIGITS:
                raise ToolError(f"calculator: the number at position {start} has more than {MAX_NUMBER_DIGITS} digits")
            tokens.append((number, start))
        else:
            raise ToolError(f"calculator: unexpected {char!r} at position {i} "
                            "(only numbers, + - * /, parentheses and spaces)")
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ;
    factor := ('+'|'-') factor | NUMBER | '(' expr ')'"""

    def __init__(self, tokens: list[tuple[str, int]], length: int):
        self.tokens = tokens
        self.length = length
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def where(self) -> str:
        return f"position {self.tokens[self.pos][1]}" if self.pos < len(self.tokens) else "the end"

    def take(self) -> str:
        token = self.tokens[self.pos][0]
        self.pos += 1
        return token

    def expression(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op = self.take()
            operand = self.factor()
            if op == "*":
                value = value * operand
            elif operand == 0:
                raise ToolError("calculator: division by zero")
            else:
                value = value / operand
        return value

    def factor(self) -> Fraction:
        token = self.peek()
        if token is None:
            raise ToolError("calculator: the expression ends where a number was expected")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ToolError(f"calculator: more than {MAX_DEPTH} nested parentheses or signs")
        try:
            if token in ("+", "-"):
                self.take()
                value = self.factor()
                return value if token == "+" else -value
            if token == "(":
                self.take()
                value = self.expression()
                if self.peek() != ")":
                    raise ToolError(f"calculator: expected ')' at {self.where()}")
                self.take()
                return value
            if token[0].isdigit() or token[0] == ".":
                self.take()
                return Fraction(token)
            raise ToolError(f"calculator: expected a number at {self.where()}, got {token!r}")
        finally:
            self.depth -= 1


def format_number(value: Fraction) -> str:
    """An integer exactly; anything else rounded to ``DECIMAL_PLACES`` places, trailing zeros cut."""
    if value.denominator == 1:
        return str(value.numerator)
    with localcontext() as ctx:
        ctx.prec = MAX_EXPRESSION_CHARS * 2  # more digits than any value the parser accepts can hold
        rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-DECIMAL_PLACES))
    text = format(rounded, "f").rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def evaluate_arithmetic(expression: str) -> Fraction:
    """The exact value of ``expression``; ``ToolError`` for anything but arithmetic."""
    if not isinstance(expression, str):
        raise ToolError(f"calculator: expected text, got {type(expression).__name__}")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"calculator: the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    tokens = _tokens(expression)
    if not tokens:
        raise ToolError("calculator: the expression is empty")
    parser = _Parser(tokens, len(expression))
    value = parser.expression()
    if parser.pos != len(tokens):
        raise ToolError(f"calculator: unexpected {parser.peek()!r} at {parser.where()}")
    return value


def calculator(expression: str) -> str:
    """The ``calculator`` tool: the value of an arithmetic expression, as text."""
    return format_number(evaluate_arithmetic(expression))


Tool = Callable[[str], str]
TOOLS: dict[str, Tool] = {"calculator": calculator}
TOOL_NAMES = tuple(TOOLS)


def get_tools(names: Sequence[str] | None) -> dict[str, Tool]:
    """The tools called ``names`` (a ValueError names an unknown one)."""
    chosen = {}
    for name in names or ():
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}; available: {', '.join(TOOL_NAMES)}")
        chosen[name] = TOOLS[name]
    return chosen


def run_tool_call(call_text: str, tools: Mapping[str, Tool]) -> str:
    """The result text of one call ``name(argument)``; failures become ``error: ...`` for the model to read."""
    try:
        name, argument = parse_tool_call(call_text)
    except ValueError as exc:
        return f"error: {exc}"
    if name not in tools:
        available = ", ".join(tools) if tools else "none"
        return f"error: no tool named {name!r} is available (available: {available})"
    try:
        return tools[name](argument)
    except ToolError as exc:
        return f"error: {exc}"


# -- generation that runs the tools ----------------------------------------------------------
@dataclass
class Completion:
    """What followed one prompt: ``ids`` (the model's tokens and the tool results, in order),
    ``from_model`` (True where the model produced the token, False on the results the runtime
    appended), whether the turn ``finished`` (an end token, not the length limit), and the calls
    made as ``(call_text, result)``."""

    ids: list[int] = field(default_factory=list)
    from_model: list[bool] = field(default_factory=list)
    finished: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)

    def add(self, tokens: Sequence[int], from_model: bool) -> None:
        self.ids.extend(tokens)
        self.from_model.extend([from_model] * len(tokens))


def end_tokens(tokenizer) -> set[int]:
    """The tokens that end a reply: ``<|im_end|>`` (chat) and end of text, those the tokenizer has."""
    ends = {special_id(tokenizer, IM_END)} if IM_END in tokenizer.special_tokens_set else set()
    if tokenizer.eot_token is not None:
        ends.add(tokenizer.eot_token)
    if not ends:
        raise ValueError("the tokenizer has neither <|im_end|> nor an end-of-text token: nothing ends a reply")
    return ends


def split_completion(ids: Sequence[int], tokenizer) -> list[dict]:
    """The assistant/tool messages (:mod:`chat_template` form) of a generated turn's ids; the
    end token and anything after it are dropped. ``render`` of the messages gives the ids back
    when the model's text is re-encoded the same way."""
    specials = {t: special_id(tokenizer, t) for t in (TOOL_CALL, TOOL_RESULT, TOOL_END)} if has_tool_tokens(tokenizer) else {}
    ends = end_tokens(tokenizer)
    messages: list[dict] = []
    part: list[int] = []
    content = None
    state = "text"  # text -> call -> result -> text ...
    for token in ids:
        if token in ends:
            break
        if specials and token == specials[TOOL_CALL] and state == "text":
            content, part, state = tokenizer.decode(part), [], "call"
        elif specials and token == specials[TOOL_RESULT] and state == "call":
            call = tokenizer.decode(part)
            try:
                name, argument = parse_tool_call(call)
            except ValueError:
                name, argument = "invalid", call
            messages.append({"role": "assistant", "content": content, "tool_call": {"name": name, "input": argument}})
            part, state = [], "result"
        elif specials and token == specials[TOOL_END] and state == "result":
            messages.append({"role": "tool", "content": tokenizer.decode(part)})
            part, state = [], "text"
        else:
            part.append(token)
    if state == "call":  # an unfinished call is kept as the text it is
        part = tokenizer.encode(TOOL_CALL, allowed_special="all") + part
        messages.append({"role": "assistant", "content": content + tokenizer.decode(part)})
    elif state == "result":
        messages.append({"role": "tool", "content": tokenizer.decode(part)})
        messages.append({"role": "assistant", "content": ""})
    else:
        messages.append({"role": "assistant", "content": tokenizer.decode(part)})
    return messages


def final_reply(ids: Sequence[int], tokenizer) -> str:
    """The text of the last assistant message of a generated turn (what follows the last tool result)."""
    return split_completion(ids, tokenizer)[-1]["content"]


def generate_with_tools(model, tokenizer, prompts: Sequence[Sequence[int]],
                        tools: Mapping[str, Tool] | Sequence[Mapping[str, Tool]] | None,
                        max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None, *,
                        generator=None, max_calls: int = 4,
                        stream: Callable[[str], None] | None = None) -> list[Completion]:
    """Continues each chat prompt (ids ending with the assistant header) to the end of its turn.

    Rows are generated together, round by round: a round runs until every row has stopped at an
    end token (``<|im_end|>``, end of text), at ``<|tool_result|>`` (a call to run) or at its
    budget; rows that called a tool get the result and go on in the next round. ``tools`` is
    one set for every row or a list of one per row. A row has at
    most ``max_new_tokens`` tokens, results included, and at most ``max_calls`` calls; the
    context bounds it too (a call whose result would not fit ends the turn, unfinished). ``stream`` (one prompt only) receives the text as it is produced,
    calls and results shown as ``[call -> result]``.
    """
    from fastllm.model.generate import StopCondition, check_sampling, generate_steps, prepare_prompts

    check_sampling(temperature, top_k, top_p)
    if stream is not None and len(prompts) != 1:
        raise ValueError("stream needs exactly one prompt")
    row_tools = [dict(t or {}) for t in tools] if isinstance(tools, (list, tuple)) else [dict(tools or {})] * len(prompts)
    if len(row_tools) != len(prompts):
        raise ValueError(f"{len(row_tools)} tool sets for {len(prompts)} prompts")
    end_ids = end_tokens(tokenizer)
    with_tools = has_tool_tokens(tokenizer)
    call_id = special_id(tokenizer, TOOL_CALL) if with_tools else None
    result_id = special_id(tokenizer, TOOL_RESULT) if with_tools else None
    tool_end = [special_id(tokenizer, TOOL_END)] if with_tools else []
    stops = frozenset(end_ids | ({result_id} if with_tools else set()))
    block = model.config.block_size
    completions = [Completion() for _ in prompts]
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    shown = _Shown(tokenizer, stream, call_id, stops) if stream is not None else None
    active = list(range(len(prompts)))
    while True:
        room = {i: min(max_new_tokens - len(completions[i].ids), block - len(prompts[i]) - len(completions[i].ids))
                for i in active}
        active = [i for i in active if room[i] > 0]
        if not active:
            break
        rows = [list(prompts[i]) + completions[i].ids for i in active]
        budget = min(max(room[i] for i in active), block - max(map(len, rows)))
        ids, mask, _, _ = prepare_prompts(model, rows, None)
        stop = StopCondition(len(rows), stops)
        for token in generate_steps(model, ids, mask, budget, stop, sampling, pad_token_id=min(stops)):
            if shown is not None:
                shown.token(int(token[0]))
        still = []
        for i, new in zip(active, stop.generated):
            completion = completions[i]
            completion.add(new[: room[i]], True)
            last = completion.ids[-1] if completion.ids else None
            if last in end_ids:
                completion.finished = True
            elif with_tools and last == result_id and len(completion.calls) < max_calls:
                starts = [k for k, t in enumerate(completion.ids[:-1]) if t == call_id]
                call = completion.ids[starts[-1] + 1: -1] if starts else None
                if call is None or tool_end[0] in call:
                    call_text, result = "", "error: <|tool_result|> without a <|tool_call|> before it"
                else:
                    call_text = tokenizer.decode(call)
                    result = run_tool_call(call_text, row_tools[i])
                result_ids = tokenizer.encode_ordinary(result) + tool_end
                used = len(completion.ids) + len(result_ids)
                if used > max_new_tokens or len(prompts[i]) + used > block:
                    continue  # no room for the result: the turn ends here, unfinished
                completion.calls.append((call_text, result))
                completion.add(result_ids, False)
                if shown is not None:
                    shown.call(call_text, result)
                still.append(i)
        active = still
    if shown is not None:
        shown.flush()
    return completions


class _Shown:
    """Streams one row's text: the model's words as they come, each call as ``[call -> result]``."""

    def __init__(self, tokenizer, write: Callable[[str], None], call_id, stops):
        self.decoder = tokenizer.incremental_decoder()
        self.write, self.call_id, self.stops = write, call_id, stops
        self.in_call = False

    def token(self, token_id: int) -> None:
        if token_id == self.call_id:
            self.flush()
            self.in_call = True
        elif token_id not in self.stops and not self.in_call:
            self.write(self.decoder.add(token_id))

    def call(self, call_text: str, result: str) -> None:
        self.in_call = False
        self.write(f"[{call_text} -> {result}]")

    def flush(self) -> None:
        self.write(self.decoder.flush())
