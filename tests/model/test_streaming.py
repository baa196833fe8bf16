"""Streaming: text pieces through the incremental decoder, stop strings held back and cut."""

import importlib

import pytest
import torch

from fastllm.model import stream_generate

generate_module = importlib.import_module("fastllm.model.generate")  # the module, not the function


def script_tokens(monkeypatch, tokens):
    """Make the sampler emit ``tokens`` in order (the model still runs every step)."""
    script = iter(tokens)

    def scripted(logits, *args, **kwargs):
        return torch.full((logits.shape[0],), next(script), dtype=torch.long)

    monkeypatch.setattr(generate_module, "sample_next", scripted)


def byte_ids(text):
    return list(text.encode("utf-8"))  # the test tokenizer's ids 0..255 are the single bytes


def test_stream_equals_generate_with_same_seed(model, tokenizer):
    prompt = "the cat"
    ids = tokenizer.encode(prompt)
    out = model.generate(ids, 40, temperature=1.0, top_k=50, seed=21, stop_tokens=tokenizer.eot_token)
    new = [t for t in out[len(ids):] if t != tokenizer.eot_token]
    pieces = list(stream_generate(model, tokenizer, prompt, 40, temperature=1.0, top_k=50, seed=21))
    assert "".join(pieces) == tokenizer.decode(new)


def test_multibyte_characters_are_never_split(model, tokenizer, monkeypatch):
    text = "caf\u00e9 \u2603 \u65e5\u672c \U0001f600!"
    script_tokens(monkeypatch, byte_ids(text))
    pieces = list(stream_generate(model, tokenizer, "a", len(text.encode())))
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert len(pieces) > 5  # text arrives as it is generated, not at the end


def test_stop_string_is_cut_and_its_prefix_held_back(model, tokenizer, monkeypatch):
    script_tokens(monkeypatch, byte_ids("hello STwo STOP world"))
    pieces = list(stream_generate(model, tokenizer, "a", 21, stop=["STOP"]))
    # without holding back, the "ST" before "OP" arrives would already have been yielded
    assert "".join(pieces) == "hello STwo "


def test_stop_string_split_across_tokens_and_characters(model, tokenizer, monkeypatch):
    script_tokens(monkeypatch, byte_ids("x \u00e9\u00e9 y"))
    assert "".join(stream_generate(model, tokenizer, "a", 8, stop="\u00e9\u00e9")) == "x "


def test_stop_token_ends_stream_without_its_text(model, tokenizer, monkeypatch):
    script_tokens(monkeypatch, byte_ids("abc") + [tokenizer.eot_token] + byte_ids("def"))
    assert "".join(stream_generate(model, tokenizer, "a", 7)) == "abc"


def test_unfinished_character_at_the_end_is_flushed(model, tokenizer, monkeypatch):
    script_tokens(monkeypatch, byte_ids("ok") + [0xE2, 0x98])
    assert "".join(stream_generate(model, tokenizer, "a", 4)) == "ok\ufffd"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(prompt=""), ValueError, "empty"),
        (dict(prompt="x" * 65), ValueError, "longer than the context"),
        (dict(top_p=0.0), ValueError, "top_p"),
        (dict(stop=[""]), ValueError, "stop strings"),
    ],
)
def test_bad_stream_input(model, tokenizer, kwargs, error, message):
    args = dict(prompt="hi", max_new_tokens=3)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        stream_generate(model, tokenizer, **args)  # checked at the call, before any text
