"""The "I don't know" recipe: the judges, the data transform, and the recipe on a model whose
answers are known in advance."""

from __future__ import annotations

import json

import pytest

from fastllm.train.refusals import (JUDGES, REFUSAL, Question, RefusalsConfig, is_refusal, load_questions, normalize,
                                    refusal_example, sample_replies)


def test_normalize_ignores_case_punctuation_articles_and_spacing():
    assert normalize("  The  Capital, of Zorbia is QUELL! ") == "capital of zorbia is quell"
    assert normalize("An apple’s") == "apples"
    assert normalize("theatre") == "theatre"  # articles only as whole words


@pytest.mark.parametrize("judge, reply, refs, expected", [
    ("exact", "Quell", ["Quell"], True), ("exact", " Quell \n", ["Quell"], True), ("exact", "quell", ["Quell"], False),
    ("normalized", "quell.", ["Quell"], True), ("normalized", "The Quell", ["Quell"], True),
    ("normalized", "Quell is it", ["Quell"], False), ("normalized", "Brask", ["Quell", "brask"], True),
    ("contains", "Tavor lives in Quell.", ["Quell"], True), ("contains", "Tavor lives in Quellton.", ["Quell"], False),
    ("contains", "New York it is", ["new york"], True), ("contains", "anything", ["the"], False),
])
def test_judges(judge, reply, refs, expected):
    assert JUDGES[judge](reply, refs) is expected


def test_refusals_are_recognised():
    assert is_refusal("I don't know.") and is_refusal("Sorry, I don't know")
    assert is_refusal("i dont know") and not is_refusal("I know: Quell.")


def said(text):
    return [{"role": "assistant", "content": text}]


def test_reliably_right_keeps_one_of_the_models_own_correct_replies():
    q = Question("Where does Tavor live?", ["Quell"], where="q.jsonl:1")
    replies = [said("Tavor lives in Brask."), said("Tavor lives in Quell!"), said("In Quell."), said("Quell, I think")]
    record = refusal_example(q, replies, JUDGES["contains"], min_correct=0.75)
    assert record["messages"] == [{"role": "user", "content": "Where does Tavor live?"},
                                  {"role": "assistant", "content": "Tavor lives in Quell!"}]
    assert record["judged"] == {"correct": 3, "samples": 4, "kept": "answer"}
    refused = refusal_example(q, replies, JUDGES["contains"], min_correct=1.0, refusal="No idea.")
    assert refused["messages"][-1] == {"role": "assistant", "content": "No idea."}
    assert refused["judged"] == {"correct": 3, "samples": 4, "kept": "refusal"}


def test_tool_using_replies_are_kept_whole_and_judged_on_the_final_answer():
    q = Question("What is 6*7?", ["42"], system="Be brief.", tools=["calculator"])
    call = [{"role": "assistant", "content": "", "tool_call": {"name": "calculator", "input": "6*7"}},
            {"role": "tool", "content": "42"}, {"role": "assistant", "content": "42"}]
    record = refusal_example(q, [call, call], JUDGES["normalized"], min_correct=1.0)
    assert record["messages"] == [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "What is 6*7?"}] + call
    assert record["tools"] == ["calculator"]
    assert refusal_example(q, [said("41"), call], JUDGES["normalized"], 1.0)["messages"][-1]["content"] == REFUSAL


def test_bad_question_files(tmp_path):
    path = tmp_path / "qa.jsonl"
    cases = [({"question": "q"}, "expected an object with a \"question\""), ({"question": "q", "answer": ""}, "non-empty"),
             ({"question": "q", "answer": [1]}, "non-empty"), ({"question": "q", "answer": "a", "system": 3}, "\"system\""),
             ({"question": "q", "answer": "a", "tools": "calculator"}, "\"tools\" must be a list")]
    for record, match in cases:
        path.write_text(json.dumps({"question": "ok", "answer": "a"}) + "\n" + json.dumps(record) + "\n")
        with pytest.raises(ValueError, match=r"qa.jsonl:2: .*" + match):
            load_questions(path)
    with pytest.raises(ValueError, match="judge must be one of"):
        RefusalsConfig(model="m", questions="q", judge="fuzzy")
    with pytest.raises(ValueError, match="min_correct must be in"):
        RefusalsConfig(model="m", questions="q", min_correct=0)


def test_sampling_gives_each_question_its_replies(tokenizer):
    """A scripted model that knows Tavor's town and makes up another's: the recipe answers one
    and refuses the other."""
    from fastllm.train.chat_template import IM_END, special_id, with_chat_tokens
    from tests.support.scripted_model import ScriptedModel

    tok = with_chat_tokens(tokenizer)
    header = tok.encode_ordinary("assistant\n")
    replies = {"Tavor": tok.encode_ordinary("In Quell."), "Mirel": tok.encode_ordinary("In Brask.")}

    def script(ids):
        start = max(i for i in range(len(ids)) if ids[i:i + len(header)] == header) + len(header)
        plan = replies["Tavor" if "Tavor" in tok.decode(ids[:start]) else "Mirel"] + [special_id(tok, IM_END)]
        return plan[min(len(ids) - start, len(plan) - 1)]

    questions = [Question("Where does Tavor live?", ["Quell"]), Question("Where does Mirel live?", ["Vost"])]
    sampled = sample_replies(ScriptedModel(tok.n_vocab, 64, script), tok, questions, samples=3, max_new_tokens=10,
                             batch_size=4)
    assert [len(s) for s in sampled] == [3, 3]
    assert sampled[0][0] == said("In Quell.") and sampled[1][2] == said("In Brask.")
    records = [refusal_example(q, s, JUDGES["contains"], 0.75) for q, s in zip(questions, sampled)]
    assert [r["judged"]["kept"] for r in records] == ["answer", "refusal"]
