import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.train.chat_template import (IGNORE, IM_END, IM_START, check_messages, generation_prompt, render,
                                         special_id, with_chat_tokens)


@pytest.fixture(scope="module")
def chat_tok(tokenizer):
    return with_chat_tokens(tokenizer)


def test_chat_tokens_are_appended_once(tokenizer, chat_tok):
    assert chat_tok.n_vocab == tokenizer.n_vocab + 2
    assert special_id(chat_tok, IM_START) == tokenizer.n_vocab
    assert special_id(chat_tok, IM_END) == tokenizer.n_vocab + 1
    assert with_chat_tokens(chat_tok) is chat_tok
    with pytest.raises(ValueError, match="no <\\|im_start\\|>"):
        special_id(tokenizer, IM_START)


message = st.fixed_dictionaries({
    "role": st.sampled_from(["system", "user", "assistant"]),
    "content": st.lists(st.sampled_from(list("ab \n<|>é🙂") + ["<|im_end|>"]), max_size=12).map("".join),
})


@settings(max_examples=80, deadline=None)
@given(messages=st.lists(message, min_size=1, max_size=6))
def test_labels_mask_exactly_the_non_assistant_tokens(chat_tok, messages):
    ids, labels = render(messages, chat_tok)
    assert len(ids) == len(labels)
    # Independent reconstruction: per message, the header and the trailing newline are
    # never trained; the content and its closing <|im_end|> are trained for assistants.
    start, end = special_id(chat_tok, IM_START), special_id(chat_tok, IM_END)
    expected_ids, expected_mask = [], []
    for m in messages:
        header = [start] + chat_tok.encode_ordinary(m["role"] + "\n")
        body = chat_tok.encode_ordinary(m["content"]) + [end]
        tail = chat_tok.encode_ordinary("\n")
        expected_ids += header + body + tail
        expected_mask += [False] * len(header) + [m["role"] == "assistant"] * len(body) + [False] * len(tail)
    assert ids == expected_ids
    assert [label != IGNORE for label in labels] == expected_mask
    assert all(label in (IGNORE, token) for label, token in zip(labels, ids))
    trained = [t for t, label in zip(ids, labels) if label != IGNORE]
    assert chat_tok.decode(trained) == "".join(m["content"] + IM_END for m in messages if m["role"] == "assistant")
    # user text that spells a control token stays ordinary text
    assert ids.count(end) == len(messages)


def test_generation_prompt_and_rendering(chat_tok):
    ids, labels = render([{"role": "user", "content": "hi"}], chat_tok, add_generation_prompt=True)
    assert ids[-len(generation_prompt(chat_tok)):] == generation_prompt(chat_tok)
    assert set(labels) == {IGNORE}
    text = chat_tok.decode(ids)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("messages, match", [
    ([], "non-empty list"),
    ("hello", "non-empty list"),
    (["hi"], "message 0 is not an object"),
    ([{"role": "bot", "content": "x"}], "role 'bot'"),
    ([{"role": "user", "content": 3}], "no string \"content\""),
])
def test_bad_messages(messages, match):
    with pytest.raises(ValueError, match=match):
        check_messages(messages, "chat.jsonl:7")
