"""End to end with GPT-2's real vocabulary: a checkpoint fastllm writes is a working transformers
checkpoint (model and tokenizer), and both generate the same text."""

import pytest
import torch

from fastllm import Tokenizer
from fastllm.model import GPT, GPTConfig, evaluate_text, stream_generate


@pytest.fixture(scope="module")
def gpt2_dir(shared_data, tmp_path_factory):
    tokenizer = Tokenizer.from_tiktoken(shared_data / "gpt2.tiktoken", "gpt2", {"<|endoftext|>": 50256})
    torch.manual_seed(7)
    model = GPT(GPTConfig.from_preset("gpt2", n_layer=2, n_head=4, n_embd=64, block_size=128))
    with torch.no_grad():  # a larger scale than GPT-2's so greedy choices vary
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("gpt2_tiny")
    model.save_pretrained(path, tokenizer=tokenizer)
    return path


def test_transformers_generates_the_same_text(gpt2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = "First Citizen:\nBefore we proceed any further, hear me speak."
    hf_tok = AutoTokenizer.from_pretrained(gpt2_dir)
    hf = AutoModelForCausalLM.from_pretrained(gpt2_dir).eval()
    enc = hf_tok(prompt, return_tensors="pt")
    hf_out = hf.generate(**enc, max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=50256)
    expected = hf_tok.decode(hf_out[0, enc["input_ids"].shape[1]:])

    model = GPT.from_pretrained(gpt2_dir)
    tokenizer = Tokenizer.from_pretrained(gpt2_dir)
    assert tokenizer.encode(prompt) == enc["input_ids"][0].tolist()
    streamed = "".join(stream_generate(model, tokenizer, prompt, 20, temperature=0, stop_tokens=None))
    assert streamed == expected
    assert len(set(hf_out[0, -20:].tolist())) > 3


def test_eval_on_real_text(gpt2_dir, shared_data):
    text = (shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")[:3000]
    model = GPT.from_pretrained(gpt2_dir)
    result = evaluate_text(model, Tokenizer.from_pretrained(gpt2_dir), text, progress=False)
    assert result.bytes == len(text.encode()) - 5  # "First" is the first token, not predicted
    assert 0 < result.loss and result.bits_per_byte > 0
