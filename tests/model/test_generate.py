"""Generation: greedy equals transformers, the cache changes nothing, batches equal single prompts."""

import pytest
import torch

from fastllm.model import GPT

PROMPTS = [[72, 101, 108, 108, 111], [258, 32, 99], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [200]]


def hf_greedy(hf_model, prompt, n, **kwargs):
    idx = torch.tensor([prompt])
    out = hf_model.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=n, do_sample=False,
        pad_token_id=hf_model.config.eos_token_id, **kwargs
    )
    return out[0].tolist()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_transformers(hf_model, model, prompt):
    expected = hf_greedy(hf_model, prompt, 24, eos_token_id=None)
    got = model.generate(torch.tensor([prompt]), 24, temperature=0)
    assert got[0].tolist() == expected
    assert len(set(expected[len(prompt):])) > 3, "degenerate reference: greedy output should vary"


def test_greedy_batch_equals_transformers_batch(hf_model, model):
    """Left-padded batch with an attention mask, as transformers does it."""
    width = max(map(len, PROMPTS))
    idx = torch.tensor([[0] * (width - len(p)) + p for p in PROMPTS])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in PROMPTS])
    expected = hf_model.generate(idx, attention_mask=mask, max_new_tokens=12, do_sample=False, eos_token_id=None,
                                 pad_token_id=0)
    got = model.generate(idx, 12, temperature=0, attention_mask=mask)
    assert torch.equal(got, expected)


def test_stop_token_equals_transformers_eos(hf_model, model):
    prompt = PROMPTS[0]
    greedy = hf_greedy(hf_model, prompt, 24, eos_token_id=None)
    stop = greedy[len(prompt) + 5]  # a token greedy decoding reaches after a few steps
    expected = hf_greedy(hf_model, prompt, 24, eos_token_id=stop)
    got = model.generate(prompt, 24, temperature=0, stop_tokens=[stop])
    assert got == expected
    assert got[-1] == stop and len(got) <= len(prompt) + 6


@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0, seed=3), dict(temperature=0.7, top_k=20, top_p=0.9, seed=11)])
def test_cache_equals_no_cache(model, sampling):
    idx = torch.tensor([PROMPTS[2]])
    with_cache = model.generate(idx, 20, **sampling)
    without = model.generate(idx, 20, use_cache=False, **sampling)
    assert torch.equal(with_cache, without)


def test_cached_logits_equal_full_forward(model):
    """The decode path itself: step-by-step logits with the cache equal one full forward."""
    from fastllm.model.generate import IncrementalForward

    ids = torch.tensor([PROMPTS[0] + PROMPTS[2]])
    full = model(ids).logits[0]
    step = IncrementalForward(model, ids[:, :3], None, ids.shape[1] - 3)
    torch.testing.assert_close(step.logits[0], full[2], atol=1e-5, rtol=1e-5)
    for t in range(3, ids.shape[1]):
        step.push(ids[:, t])
        torch.testing.assert_close(step.logits[0], full[t], atol=1e-5, rtol=1e-5)


def test_batch_of_different_lengths_equals_one_at_a_time(model):
    batch = model.generate(PROMPTS, 16, temperature=0)
    assert batch == [model.generate(p, 16, temperature=0) for p in PROMPTS]
    assert [len(b) for b in batch] == [len(p) + 16 for p in PROMPTS]


def test_batch_rows_stop_independently(model):
    singles = [model.generate(p, 16, temperature=0) for p in PROMPTS]
    stop = singles[1][len(PROMPTS[1]) + 2]
    batch = model.generate(PROMPTS, 16, temperature=0, stop_tokens=stop)
    for prompt, single, row in zip(PROMPTS, singles, batch):
        new = single[len(prompt):]
        expected = single[: len(prompt) + new.index(stop) + 1] if stop in new else single
        assert row == expected


def test_tensor_output_pads_finished_rows(model):
    single = model.generate(PROMPTS[0], 10, temperature=0)
    stop = single[len(PROMPTS[0]) + 1]
    idx = torch.tensor([PROMPTS[0], PROMPTS[0][::-1]])
    out = model.generate(idx, 10, temperature=0, stop_tokens=stop, pad_token_id=7)
    row = out[0].tolist()
    assert row[: len(PROMPTS[0]) + 2] == single[: len(PROMPTS[0]) + 2]
    if stop not in model.generate(PROMPTS[0][::-1], 10, temperature=0)[5:]:
        assert set(row[len(PROMPTS[0]) + 2 :]) <= {7}


def test_seed_reproduces_and_differs(model):
    a = model.generate(PROMPTS[0], 20, temperature=1.0, seed=5)
    assert a == model.generate(PROMPTS[0], 20, temperature=1.0, seed=5)
    assert any(model.generate(PROMPTS[0], 20, temperature=1.0, seed=s) != a for s in range(6, 9))


def test_stop_string_ends_generation(model, tokenizer):
    prompt = PROMPTS[0]
    free = model.generate(prompt, 30, temperature=0)
    text = tokenizer.decode(free[len(prompt):])
    target = text[6:8]
    assert target
    out = model.generate(prompt, 30, temperature=0, stop_strings=[target], tokenizer=tokenizer)
    new_text = tokenizer.decode(out[len(prompt):])
    assert target in new_text and target not in tokenizer.decode(out[len(prompt):-1])
    assert out == free[: len(out)]


def test_max_new_tokens_zero_and_training_mode_restored(model):
    model.train()
    assert model.generate(PROMPTS[0], 0) == PROMPTS[0]
    model.generate(PROMPTS[0], 2)
    assert model.training


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((list(range(64)) + [1], 1), {}, ValueError, "longer than the context"),
        ((list(range(60)), 10), {}, ValueError, "exceeds the context"),
        (([], 5), {}, ValueError, "empty"),
        (([[1, 2], []], 5), {}, ValueError, "prompt 1 is empty"),
        ((torch.zeros((1, 0), dtype=torch.long), 5), {}, ValueError, "empty"),
        (([1, 2], 5), dict(top_p=0.0), ValueError, "top_p"),
        (([1, 2], 5), dict(top_p=1.01), ValueError, "top_p"),
        (([1, 2], -1), {}, ValueError, "max_new_tokens"),
        (([1, 2], 5), dict(stop_strings=["x"]), ValueError, "tokenizer"),
        (([1, 2], 5), dict(stop_tokens=[10**6]), ValueError, "stop token"),
        (("hello", 5), {}, TypeError, "token ids"),
        ((torch.zeros((1, 2)), 5), {}, TypeError, "integer"),
        ((torch.zeros((1, 2), dtype=torch.long), 5), dict(attention_mask=torch.tensor([[1, 0]])), ValueError, "left"),
    ],
)
def test_bad_generate_input(model, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        model.generate(*args, **kwargs)


def test_generate_with_triton_interpreter_equals_reference(hf_dir):
    """The kernels' Triton path (interpreted on CPU) through prefill and decode, a left-padded
    batch included (padded rows in the kernels)."""
    from fastllm.kernels import force_backend, interpreting

    if not interpreting() and not torch.cuda.is_available():
        pytest.skip("needs TRITON_INTERPRET=1 or a GPU")
    model = GPT.from_pretrained(hf_dir)
    expected = model.generate(PROMPTS[0], 4, temperature=0)
    batch = model.generate(PROMPTS[:2], 3, temperature=0)
    with force_backend("triton"):
        assert model.generate(PROMPTS[0], 4, temperature=0) == expected
        assert model.generate(PROMPTS[:2], 3, temperature=0) == batch


def test_attention_goes_through_the_kernels_padded_or_not(model, monkeypatch):
    import fastllm.model.gpt as attention

    calls = []
    real = attention._flash_attention

    def spy(q, k, v, **kwargs):
        calls.append((q.shape[2], k.shape[2], kwargs))
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(attention, "_flash_attention", spy)
    model.generate(PROMPTS[0], 3, temperature=0)
    n_layer, prompt_len = model.config.n_layer, len(PROMPTS[0])
    # prefill (q over the prompt) then decode steps (one query over the cache), every layer
    assert [c[:2] for c in calls] == [(prompt_len, prompt_len)] * n_layer + [
        (1, prompt_len + i) for i in (1, 2) for _ in range(n_layer)
    ]
    assert all(c[2] == {"causal": True} for c in calls)
    calls.clear()
    model.generate(PROMPTS[:2], 2, temperature=0)  # different lengths: left padding, the kernels' rows
    width = max(len(PROMPTS[0]), len(PROMPTS[1]))
    assert [c[:2] for c in calls] == [(width, width)] * n_layer + [(1, width + 1)] * n_layer
    for _, _, kwargs in calls:
        assert kwargs["key_start"].tolist() == [0, width - len(PROMPTS[1])]
        assert kwargs["key_end"].tolist() == [kwargs["key_end"][0].item()] * 2
    assert [c[2]["query_end"].tolist() for c in calls] == [[width, width]] * n_layer + [[1, 1]] * n_layer


def test_padding_without_rows_goes_to_sdpa(model, monkeypatch):
    """A mask with a hole is no padded batch: the masked SDPA path, same logits as per row."""
    import fastllm.model.gpt as attention

    monkeypatch.setattr(attention, "_flash_attention", lambda *a, **k: pytest.fail("kernels called with a hole"))
    ids = torch.tensor([PROMPTS[2][:6]])
    holes = torch.tensor([[1, 1, 0, 1, 1, 1]])
    with_holes = model(ids, attention_mask=holes).logits
    monkeypatch.undo()
    keep = holes[0].bool()
    # the tokens after the hole see what a sequence without it sees, positions counted over real tokens
    alone = model(ids[:, keep]).logits
    torch.testing.assert_close(with_holes[:, keep], alone, atol=1e-5, rtol=1e-5)


def test_forward_with_a_cache_continues_the_sequence(model):
    from fastllm.model import KVCache

    ids = torch.tensor([PROMPTS[2]])
    cache = KVCache.for_model(model, 1, 12)
    first = model(ids[:, :7], kv_cache=cache).logits
    rest = model(ids[:, 7:], kv_cache=cache).logits
    torch.testing.assert_close(torch.cat([first, rest], dim=1), model(ids).logits, atol=1e-5, rtol=1e-5)
    assert cache.length == 11
    with pytest.raises(ValueError, match="KV cache overflow"):
        model(ids[:, :2], kv_cache=cache)
