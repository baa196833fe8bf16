import io
import json

import pytest

from fastllm.cli.chat import chat_loop, fit_context, load_chat_model
from fastllm.train.sft import SFTConfig, load_conversations, run_sft

FACTS = [("red", "apple"), ("yellow", "banana"), ("green", "lime"), ("purple", "grape")]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def conversations():
    return [{"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": f"Which fruit is {color}?"},
                          {"role": "assistant", "content": f"The {fruit}."}]} for color, fruit in FACTS]


@pytest.fixture(scope="module")
def sft_run(pretrained_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    data = write_jsonl(out / "chat.jsonl", conversations())
    summary = run_sft(SFTConfig(model=str(pretrained_dir), data=str(data), out=str(out / "model"),
                                max_steps=40, batch_size=4, lr=3e-3, warmup_steps=2, device="cpu", progress=False))
    return summary, out / "model"


def test_sft_learns_the_replies_and_saves_a_chat_model(sft_run, tokenizer):
    from fastllm import Tokenizer
    from fastllm.model import GPT

    summary, model_dir = sft_run
    losses = [r["loss"] for r in summary["history"]]
    assert losses[-1] < 0.5 * losses[0]
    model = GPT.from_pretrained(model_dir)
    chat_tok = Tokenizer.from_pretrained(model_dir)
    assert model.config.vocab_size == chat_tok.n_vocab == tokenizer.n_vocab + 2
    assert {"<|im_start|>", "<|im_end|>"} <= set(chat_tok.special_tokens_set)
    assert all(r["tokens"] == sum(len(chat_tok.encode_ordinary(f"The {f}.")) + 1 for _, f in FACTS)
               for r in summary["history"])  # batch of all 4: only assistant tokens count


def test_chat_streams_replies_and_keeps_the_conversation(sft_run):
    _, model_dir = sft_run
    model, tok = load_chat_model(str(model_dir), "cpu")
    lines = iter(["Which fruit is red?", "/reset", "Which fruit is green?"])

    def fake_input(prompt):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    messages = chat_loop(model, tok, system="Be brief.", max_new_tokens=12, input_fn=fake_input, output=out,
                         temperature=0.0)
    text = out.getvalue()
    assert text.count("assistant> ") == 2
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[1]["content"] == "Which fruit is green?"
    assert messages[2]["content"] in text and "<|im_end|>" not in text


def test_chat_needs_a_chat_model(pretrained_dir):
    with pytest.raises(ValueError, match="fastllm sft"):
        load_chat_model(str(pretrained_dir), "cpu")


def test_long_conversations_drop_the_oldest_turns(sft_run):
    from fastllm import Tokenizer

    tok = Tokenizer.from_pretrained(sft_run[1])
    history = [{"role": "system", "content": "S"}]
    for i in range(10):
        history += [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
    history.append({"role": "user", "content": "last"})
    ids, kept = fit_context(history, tok, block_size=64, reserve=8)
    assert len(ids) + 8 <= 64
    assert kept[0]["role"] == "system" and kept[-1]["content"] == "last" and len(kept) < len(history)
    with pytest.raises(ValueError, match="shorter message"):
        fit_context([{"role": "user", "content": "x" * 200}], tok, block_size=64, reserve=8)


def test_bad_sft_data_gives_line_numbers(tmp_path, pretrained_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(conversations()[0]) + "\n" + '{"messages": [\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: malformed JSON"):
        load_conversations(bad)
    no_reply = write_jsonl(tmp_path / "noreply.jsonl",
                           [conversations()[0], {"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(ValueError, match=r"noreply.jsonl:2: the conversation has no assistant turn"):
        load_conversations(no_reply)
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"txt": "x"}])
    with pytest.raises(ValueError, match=r"wrong.jsonl:1: expected an object with a \"messages\" list"):
        load_conversations(wrong)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no records"):
        load_conversations(empty)
    long = write_jsonl(tmp_path / "long.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                               {"role": "assistant", "content": "y" * 200}]}])
    with pytest.raises(ValueError, match=r"long.jsonl:1: \d+ tokens, longer than the model's context of 128"):
        run_sft(SFTConfig(model=str(pretrained_dir), data=str(long), out=str(tmp_path / "o"), device="cpu",
                          progress=False))


def test_plain_text_lines_are_replayed_whole(tmp_path, tokenizer):
    from fastllm.train.sft import build_examples

    data = write_jsonl(tmp_path / "mixed.jsonl", conversations()[:1] + [{"text": "The fox ran."}])
    loaded = load_conversations(data)
    assert loaded[1] == (2, "The fox ran.", [])
    from fastllm.train.chat_template import with_chat_tokens

    _, (ids, labels) = build_examples(loaded, with_chat_tokens(tokenizer), 128)
    assert ids == labels == tokenizer.encode_ordinary("The fox ran.") + [tokenizer.eot_token]
    write_jsonl(tmp_path / "bad.jsonl", [{"text": ""}])
    with pytest.raises(ValueError, match=r"bad.jsonl:1: \"text\" must be a non-empty string"):
        load_conversations(tmp_path / "bad.jsonl")
