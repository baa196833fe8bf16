"""Tool use: the calculator (and what it refuses), tool calls in the chat template, and generation
that stops at a call, runs the tool and goes on."""

from __future__ import annotations

import io
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.train.chat_template import (IGNORE, IM_END, TOOL_CALL, TOOL_END, TOOL_RESULT, check_messages,
                                         format_tool_call, parse_tool_call, render, special_id, tools_line,
                                         with_chat_tokens, with_tools)
from fastllm.train.tools import (ToolError, calculator, evaluate_arithmetic, final_reply, generate_with_tools,
                                 get_tools, run_tool_call, split_completion)
from tests.support.scripted_model import ScriptedModel, calculator_script


# -- the calculator --------------------------------------------------------------------------
@pytest.mark.parametrize("expression, expected", [
    ("2*(3+4)", "14"), ("7/2", "3.5"), ("1/3", "0.3333333333"), ("2/3", "0.6666666667"), ("-(-3)", "3"),
    ("10 - 2 - 3", "5"), ("2/4*2", "1"), ("1.5*2", "3"), (".5+.5", "1"), ("-1/8", "-0.125"), ("+4", "4"),
    ("1 - 1.00000000001", "0"), ("123456789 * 987654321", "121932631112635269"), (" ( 6 ) ", "6"),
    ("12*7", "84"), ("100 - 7 * 3", "79"),
])
def test_calculator_values(expression, expected):
    assert calculator(expression) == expected


@pytest.mark.parametrize("expression, match", [
    ("__import__('os').system('true')", "unexpected '_'"),
    ("2**3", r"expected a number at position 2, got '\*'"),
    ("abs(-1)", "unexpected 'a'"),
    ("1e5", "unexpected 'e'"),
    ("x", "unexpected 'x'"),
    ("2 +", "ends where a number was expected"),
    ("(1", r"expected '\)' at the end"),
    ("1)", r"unexpected '\)' at position 1"),
    ("", "empty"),
    ("   ", "empty"),
    ("1/0", "division by zero"),
    ("1/(2-2)", "division by zero"),
    ("(" * 50 + "1" + ")" * 50, "nested"),
    ("-" * 50 + "1", "nested"),
    ("1+" * 150 + "1", "longer than 200"),
    ("1" * 41, "more than 40 digits"),
    ("١٢", "unexpected"),
    ("1..2", "is not a number"),
    ("1.2.3", "is not a number"),
    ("2 3", r"unexpected '3'"),
    ("1;2", "unexpected ';'"),
])
def test_calculator_refuses_anything_but_arithmetic(expression, match):
    with pytest.raises(ToolError, match=match):
        calculator(expression)


def _expressions():
    number = st.integers(0, 10**6).map(lambda n: (str(n), Fraction(n)))

    def combine(children):
        def build(a, op, b):
            text = f"({a[0]}){op}({b[0]})"
            if op == "/":
                value = None if b[1] in (0, None) or a[1] is None else a[1] / b[1]
            elif a[1] is None or b[1] is None:
                value = None
            else:
                value = {"+": a[1] + b[1], "-": a[1] - b[1], "*": a[1] * b[1]}[op]
            return text, value
        return st.builds(build, children, st.sampled_from("+-*/"), children) | children.map(
            lambda a: (f"-({a[0]})", None if a[1] is None else -a[1]))

    return st.recursive(number, combine, max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(_expressions())
def test_calculator_equals_exact_arithmetic(case):
    text, value = case
    if value is None:  # a division by zero somewhere in the tree
        with pytest.raises(ToolError, match="division by zero"):
            evaluate_arithmetic(text)
    else:
        assert evaluate_arithmetic(text) == value


def test_tool_calls_run_or_explain_why_not():
    tools = get_tools(["calculator"])
    assert run_tool_call("calculator(6*7)", tools) == "42"
    assert run_tool_call("calculator(import os)", tools).startswith("error: calculator: unexpected 'i'")
    assert run_tool_call("search(cats)", tools) == "error: no tool named 'search' is available (available: calculator)"
    assert run_tool_call("calculator 6*7", tools).startswith("error: a tool call must look like name(argument)")
    assert run_tool_call("calculator(1)", {}).startswith("error: no tool named 'calculator' is available (available: none)")
    with pytest.raises(ValueError, match="unknown tool 'search'"):
        get_tools(["search"])


# -- the template ------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
       argument=st.text(alphabet="0123456789+-*/() abc\n)(", max_size=20))
def test_tool_call_text_round_trips(name, argument):
    assert parse_tool_call(format_tool_call(name, argument)) == (name, argument)


@pytest.mark.parametrize("text", ["calculator", "calc(1", "(1)", "1calc(2)", "calc(1) extra", ""])
def test_malformed_tool_calls_are_refused(text):
    with pytest.raises(ValueError, match="must look like name"):
        parse_tool_call(text)


@pytest.fixture(scope="module")
def tool_tok(tokenizer):
    return with_chat_tokens(tokenizer, tools=True)


TOOL_CONVERSATION = [
    {"role": "user", "content": "What is 12*7?"},
    {"role": "assistant", "content": "Let me see.", "tool_call": {"name": "calculator", "input": "12*7"}},
    {"role": "tool", "content": "84"},
    {"role": "assistant", "content": "It is 84."},
]


def test_tool_turns_train_the_call_and_not_the_result(tool_tok):
    ids, labels = render(TOOL_CONVERSATION, tool_tok, tools=["calculator"])
    assert tool_tok.decode(ids) == (
        "<|im_start|>system\nTools: calculator.<|im_end|>\n<|im_start|>user\nWhat is 12*7?<|im_end|>\n"
        "<|im_start|>assistant\nLet me see.<|tool_call|>calculator(12*7)<|tool_result|>84<|tool_end|>It is 84.<|im_end|>\n")
    trained = [t for t, label in zip(ids, labels) if label != IGNORE]
    assert tool_tok.decode(trained) == "Let me see.<|tool_call|>calculator(12*7)<|tool_result|>It is 84.<|im_end|>"
    assert all(label in (IGNORE, token) for label, token in zip(labels, ids))
    # the result and <|tool_end|> are context only
    end = ids.index(special_id(tool_tok, TOOL_END))
    result = ids.index(special_id(tool_tok, TOOL_RESULT))
    assert set(labels[result + 1: end + 1]) == {IGNORE}


def test_tools_are_announced_in_the_system_message():
    assert tools_line(["calculator"]) == "Tools: calculator."
    user = [{"role": "user", "content": "hi"}]
    assert with_tools(user, ["calculator"])[0] == {"role": "system", "content": "Tools: calculator."}
    system = [{"role": "system", "content": "Be brief."}] + user
    assert with_tools(system, ["calculator"])[0]["content"] == "Be brief.\nTools: calculator."
    assert with_tools(system, None) == system


@pytest.mark.parametrize("messages, match", [
    ([{"role": "tool", "content": "84"}], "follows no assistant tool call"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_call": {"name": "c", "input": "1"}}],
     "no \"tool\" message with its result follows"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_call": {"name": "c", "input": "1"}},
      {"role": "tool", "content": "1"}], "no assistant message after it"),
    ([{"role": "user", "content": "q", "tool_call": {"name": "c", "input": "1"}}], "only assistants call tools"),
    ([{"role": "assistant", "content": "", "tool_call": {"name": "c(", "input": "1"}}], "must be {\"name\""),
    ([{"role": "assistant", "content": "", "tool_call": "c(1)"}], "must be {\"name\""),
])
def test_bad_tool_sequences(messages, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("{", r"\{")):
        check_messages(messages, "chat.jsonl:3")


# -- generation with tools ---------------------------------------------------------------------
def tool_script(tok, expression_of):
    return calculator_script(tok, expression_of)


def prompt_ids(tok, question):
    ids, _ = render([{"role": "user", "content": question}], tok, add_generation_prompt=True, tools=["calculator"])
    return ids


def test_generation_stops_at_the_call_runs_the_tool_and_goes_on(tool_tok):
    questions = {"What is 12*7?": "12*7", "Run os": "__import__('os')", "And 100-1?": "100 - 1"}
    expression = lambda prompt: next(v for k, v in questions.items() if k in prompt)  # noqa: E731
    model = ScriptedModel(tool_tok.n_vocab, 512, tool_script(tool_tok, expression))
    prompts = [prompt_ids(tool_tok, q) for q in questions]
    completions = generate_with_tools(model, tool_tok, prompts, get_tools(["calculator"]), max_new_tokens=400,
                                      temperature=1.0)
    replies = [final_reply(c.ids, tool_tok) for c in completions]
    assert replies[0] == "It is 84." and replies[2] == "It is 99."
    assert replies[1].startswith("It is error: calculator: unexpected '_'")
    assert all(c.finished for c in completions) and [len(c.calls) for c in completions] == [1, 1, 1]
    assert completions[0].calls == [("calculator(12*7)", "84")]
    # the result tokens came from the runtime, everything else from the model
    first = completions[0]
    runtime = [t for t, mine in zip(first.ids, first.from_model) if not mine]
    assert tool_tok.decode(runtime) == "84<|tool_end|>"
    # the messages of a completion render back to the same tokens
    messages = split_completion(first.ids, tool_tok)
    assert messages == [{"role": "assistant", "content": "", "tool_call": {"name": "calculator", "input": "12*7"}},
                        {"role": "tool", "content": "84"}, {"role": "assistant", "content": "It is 84."}]
    full, _ = render([{"role": "user", "content": "What is 12*7?"}] + messages, tool_tok, tools=["calculator"])
    assert full[: len(prompts[0]) + len(first.ids)] == prompts[0] + first.ids


def test_generation_streams_one_row_and_keeps_to_its_limits(tool_tok):
    model = ScriptedModel(tool_tok.n_vocab, 300, tool_script(tool_tok, lambda prompt: "6*7"))
    pieces = []
    [done] = generate_with_tools(model, tool_tok, [prompt_ids(tool_tok, "q")], get_tools(["calculator"]), 60,
                                 temperature=0.0, stream=pieces.append)
    assert "".join(pieces) == "[calculator(6*7) -> 42]It is 42."
    [cut] = generate_with_tools(model, tool_tok, [prompt_ids(tool_tok, "q")], get_tools(["calculator"]), 5,
                                temperature=0.0)
    assert len(cut.ids) == 5 and not cut.finished
    # no tools available: the call is answered with an error, and the model goes on
    [bare] = generate_with_tools(model, tool_tok, [prompt_ids(tool_tok, "q")], {}, 200, temperature=0.0)
    assert final_reply(bare.ids, tool_tok).startswith("It is error: no tool named 'calculator'")
    with pytest.raises(ValueError, match="exactly one prompt"):
        generate_with_tools(model, tool_tok, [[1], [2]], {}, 5, stream=print)


def test_a_model_that_keeps_calling_is_stopped_after_max_calls(tool_tok):
    call, result = special_id(tool_tok, TOOL_CALL), special_id(tool_tok, TOOL_RESULT)
    one = tool_tok.encode_ordinary("calculator(1)")
    loop = [call] + one + [result]

    def script(ids):  # calls again right after every result
        ends = [i for i, t in enumerate(ids) if t == special_id(tool_tok, TOOL_END)]
        since = ids[ends[-1] + 1:] if ends else ids[len(prompt):]
        return loop[len(since) % len(loop)]

    prompt = prompt_ids(tool_tok, "q")
    model = ScriptedModel(tool_tok.n_vocab, 256, script)
    [c] = generate_with_tools(model, tool_tok, [prompt], get_tools(["calculator"]), 200, max_calls=3)
    assert len(c.calls) == 3 and not c.finished and c.ids[-1] == result


def test_chat_without_tool_tokens_just_ends_turns(tokenizer):
    tok = with_chat_tokens(tokenizer)
    text = tok.encode_ordinary("plain answer") + [special_id(tok, IM_END)]
    model = ScriptedModel(tok.n_vocab, 64, lambda ids: text[min(len(ids) - n, len(text) - 1)])
    prompt, _ = render([{"role": "user", "content": "hi"}], tok, add_generation_prompt=True)
    n = len(prompt)
    out = io.StringIO()
    [c] = generate_with_tools(model, tok, [prompt], get_tools(["calculator"]), 30, stream=out.write)
    assert c.finished and final_reply(c.ids, tok) == "plain answer" == out.getvalue()


def test_a_result_that_does_not_fit_ends_the_turn(tool_tok):
    model = ScriptedModel(tool_tok.n_vocab, 512, tool_script(tool_tok, lambda prompt: "6*7"))
    prompt = prompt_ids(tool_tok, "q")
    n_call = len([special_id(tool_tok, TOOL_CALL)] + tool_tok.encode_ordinary("calculator(6*7)")) + 1
    [c] = generate_with_tools(model, tool_tok, [prompt], get_tools(["calculator"]), n_call + 1)  # "42" + end: 3 more
    assert len(c.ids) == n_call and not c.calls and not c.finished
    small = ScriptedModel(tool_tok.n_vocab, len(prompt) + n_call + 2, tool_script(tool_tok, lambda prompt: "6*7"))
    [c] = generate_with_tools(small, tool_tok, [prompt], get_tools(["calculator"]), 100)
    assert len(prompt) + len(c.ids) <= small.config.block_size and not c.finished
