"""transformers models on attn_implementation="fastllm" and apply(...) against "eager".

Tiny random models (float32) of the families the integration names, built from transformers
configs: Llama and Qwen2 with GQA, Mistral with a sliding window, Gemma 2 with both soft-caps
and a sliding window, GPT-2. Without a GPU the kernels run in Triton's interpreter (the CUDA
code path); one family also runs on the PyTorch reference (the CPU path).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")

import fastllm.integrations.transformers as fastllm_hf  # noqa: E402  (registers "fastllm")
from fastllm.kernels import force_backend  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")

VOCAB, BATCH, SEQ = 96, 3, 12
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=64, initializer_range=0.1, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def make_config(family: str):
    t = transformers
    if family == "llama":
        return t.LlamaConfig(num_key_value_heads=2, **COMMON)
    if family == "qwen2":
        return t.Qwen2Config(num_key_value_heads=1, **COMMON)
    if family == "mistral":
        return t.MistralConfig(num_key_value_heads=2, sliding_window=5, **COMMON)
    if family == "gemma2":
        return t.Gemma2Config(num_key_value_heads=2, head_dim=16, sliding_window=5, query_pre_attn_scalar=24,
                              attn_logit_softcapping=3.0, final_logit_softcapping=2.5, **COMMON)
    if family == "gpt2":
        return t.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64, initializer_range=0.1,
                            attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0, bos_token_id=1, eos_token_id=2)
    raise ValueError(family)


FAMILIES = ["llama", "qwen2", "mistral", "gemma2", "gpt2"]


def model_pair(family: str, seed: int = 0):
    """The same random weights as an "eager" model and a "fastllm" one (own configs)."""
    torch.manual_seed(seed)
    config = make_config(family)
    config._attn_implementation = "eager"
    eager = transformers.AutoModelForCausalLM.from_config(config).eval()
    fast = transformers.AutoModelForCausalLM.from_config(copy.deepcopy(config)).eval()
    fast.load_state_dict(eager.state_dict())
    fast.set_attn_implementation("fastllm")
    assert eager.config._attn_implementation == "eager" and fast.config._attn_implementation == "fastllm"
    return eager, fast


def batch(padding: str, seed: int = 1):
    """Token ids and a mask: no padding, left padding (generation) or right padding (training)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=gen)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    if padding == "left":
        mask[1, :4] = 0
        mask[2, :9] = 0
    elif padding == "right":
        mask[1, 7:] = 0
        mask[2, 2:] = 0
    return ids, (None if padding == "none" else mask)


def labels_of(ids, mask):
    """Targets over real tokens predicted from real tokens (-100 elsewhere)."""
    labels = ids.clone()
    if mask is not None:
        real = mask.bool()
        labels[~real] = -100
        labels[:, 1:][~real[:, :-1]] = -100  # predicted from a padding position
    return labels


def real_positions(mask):
    return torch.ones(BATCH, SEQ, dtype=torch.bool) if mask is None else mask.bool()


def assert_grads_close(eager, fast, tol=1e-5):
    for (name, a), (_, b) in zip(eager.named_parameters(), fast.named_parameters()):
        assert b.grad is not None, name
        torch.testing.assert_close(b.grad, a.grad, atol=tol, rtol=tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("padding", ["none", "left", "right"])
@pytest.mark.parametrize("family", FAMILIES)
def test_attention_gives_eagers_logits_loss_and_gradients(family, padding):
    eager, fast = model_pair(family)
    ids, mask = batch(padding)
    labels = labels_of(ids, mask)
    ref = eager(ids, attention_mask=mask, labels=labels)
    got = fast(ids, attention_mask=mask, labels=labels)
    real = real_positions(mask)
    torch.testing.assert_close(got.logits[real], ref.logits[real], atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(got.loss, ref.loss, atol=1e-6, rtol=1e-6)
    ref.loss.backward()
    got.loss.backward()
    assert_grads_close(eager, fast)


@pytest.mark.parametrize("family", FAMILIES)
def test_apply_gives_eagers_loss_and_gradients(family):
    """apply(): fastllm attention + linear_cross_entropy; training mode never builds the
    logits, eval mode returns them. Right padding, as in training."""
    eager, fast = model_pair(family)
    assert fastllm_hf.apply(fast) is fast
    ids, mask = batch("right")
    labels = labels_of(ids, mask)
    eager.train()
    fast.train()
    ref = eager(ids, attention_mask=mask, labels=labels)
    got = fast(ids, attention_mask=mask, labels=labels)
    assert got.logits is None
    torch.testing.assert_close(got.loss, ref.loss, atol=1e-6, rtol=1e-6)
    ref.loss.backward()
    got.loss.backward()
    assert_grads_close(eager, fast)
    fast.eval()
    eager.eval()
    with torch.no_grad():
        out = fast(ids, attention_mask=mask, labels=labels)
        ref = eager(ids, attention_mask=mask, labels=labels)
    real = real_positions(mask)
    torch.testing.assert_close(out.logits[real], ref.logits[real], atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-6, rtol=1e-6)


def test_apply_loss_options_are_transformers():
    """num_items_in_batch (sum / count), shift_labels as given, return_dict=False (loss first),
    labels absent (the class's own forward)."""
    eager, fast = model_pair("llama")
    fastllm_hf.apply(fast)
    ids, mask = batch("none")
    labels = labels_of(ids, mask)
    labels[0, :5] = -100
    n = torch.tensor(23)
    ref = eager(ids, labels=labels, num_items_in_batch=n).loss
    torch.testing.assert_close(fast(ids, labels=labels, num_items_in_batch=n).loss, ref, atol=1e-6, rtol=1e-6)
    shifted = torch.roll(labels, -2, dims=1)
    ref = eager(ids, labels=labels, shift_labels=shifted).loss
    torch.testing.assert_close(fast(ids, labels=labels, shift_labels=shifted).loss, ref, atol=1e-6, rtol=1e-6)
    loss, logits = fast(ids, labels=labels, return_dict=False)[:2]
    torch.testing.assert_close(loss, eager(ids, labels=labels).loss, atol=1e-6, rtol=1e-6)
    assert logits.shape == (BATCH, SEQ, VOCAB)  # eval mode: the logits too
    torch.testing.assert_close(fast(ids).logits, eager(ids).logits, atol=2e-5, rtol=2e-5)
    assert fastllm_hf.apply(fast) is fast  # twice is once


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_greedy_generation_is_eagers(family):
    """Left-padded prompts; Gemma 2's sliding layers (window 5) roll their cache (key offsets)."""
    eager, fast = model_pair(family)
    ids, mask = batch("left")
    kwargs = dict(attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0)
    expected = eager.generate(ids, **kwargs)
    assert torch.equal(fast.generate(ids, **kwargs), expected)
    assert len(set(expected[:, SEQ:].flatten().tolist())) > 3, "degenerate reference"


def test_static_cache_generation_is_eagers():
    """A static cache hands the layers more keys than are filled: the mask cuts them."""
    eager, fast = model_pair("llama")
    ids, mask = batch("left")
    kwargs = dict(attention_mask=mask, max_new_tokens=3, do_sample=False, pad_token_id=0, cache_implementation="static")
    assert torch.equal(fast.generate(ids, **kwargs), eager.generate(ids, **kwargs))


def test_cpu_reference_path_gives_eagers_results():
    """The PyTorch reference (what runs on a CPU without the interpreter), padded batch."""
    eager, fast = model_pair("qwen2")
    fastllm_hf.apply(fast)
    ids, mask = batch("right")
    labels = labels_of(ids, mask)
    with force_backend("reference"):
        got = fast(ids, attention_mask=mask, labels=labels)
        got.loss.backward()
    ref = eager(ids, attention_mask=mask, labels=labels)
    ref.loss.backward()
    torch.testing.assert_close(got.loss, ref.loss, atol=1e-6, rtol=1e-6)
    assert_grads_close(eager, fast)


def test_from_pretrained_with_attn_implementation(tmp_path):
    eager, _ = model_pair("llama")
    eager.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="fastllm")
    assert loaded.config._attn_implementation == "fastllm"
    ids, mask = batch("left")
    real = real_positions(mask)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, attention_mask=mask).logits[real],
                                   eager(ids, attention_mask=mask).logits[real], atol=2e-5, rtol=2e-5)


# ---------------------------------------------------------------- what the kernels do not take


def test_the_kernels_serve_padded_batches(monkeypatch):
    """Padding reaches the kernels as padded rows, found once per forward (not per layer)."""
    from fastllm.kernels import padding

    calls = []
    real = padding.padded_rows
    monkeypatch.setattr(fastllm_hf, "padded_rows", lambda *a, **k: calls.append(1) or real(*a, **k))
    kernel = []
    monkeypatch.setattr(fastllm_hf, "flash_attention", lambda *a, **k: kernel.append(k) or fastllm_hf_flash(*a, **k))
    _, fast = model_pair("llama")
    ids, mask = batch("left")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="fastllm attention")  # no fallback
        fast(ids, attention_mask=mask)
    assert calls == [1] and len(kernel) == 2
    assert all(k["key_start"].tolist() == [0, 4, 9] for k in kernel)


def fastllm_hf_flash(*args, **kwargs):
    from fastllm.kernels import flash_attention

    return flash_attention(*args, **kwargs)


def test_dropout_in_training_falls_back_and_says_so():
    eager, fast = model_pair("gpt2")
    for model in (eager, fast):
        model.config.attn_pdrop = 0.5
        for block in model.transformer.h:
            block.attn.attn_dropout.p = 0.5
    fastllm_hf._warned.clear()
    ids, _ = batch("none")
    fast.train()
    with pytest.warns(UserWarning, match="dropout in training"):
        out = fast(ids).logits
    assert torch.isfinite(out).all()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="fastllm attention")
        fast(ids)  # once
    fast.eval()  # no dropout in eval: the kernels, eager's logits
    torch.testing.assert_close(fast(ids).logits, eager(ids).logits, atol=2e-5, rtol=2e-5)


def test_packed_sequences_fall_back_to_the_dense_mask():
    """position_ids restarting inside a row (packed sequences): transformers' own mask,
    computed in PyTorch, eager's logits."""
    eager, fast = model_pair("llama")
    ids, _ = batch("none")
    position_ids = torch.cat([torch.arange(5), torch.arange(7)])[None].expand(BATCH, -1)
    fastllm_hf._warned.clear()
    with pytest.warns(UserWarning, match="mask pattern"):
        got = fast(ids, position_ids=position_ids, use_cache=False).logits
    expected = eager(ids, position_ids=position_ids, use_cache=False).logits
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=2e-5)
    # the second sequence does not see the first: its logits are those of it alone
    alone = eager(ids[:, 5:], use_cache=False).logits
    torch.testing.assert_close(got[:, 5:], alone, atol=2e-5, rtol=2e-5)


def test_mask_with_holes_falls_back():
    eager, fast = model_pair("mistral")
    ids, _ = batch("none")
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[0, 3:5] = 0
    fastllm_hf._warned.clear()
    with pytest.warns(UserWarning, match="not one run"):
        got = fast(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], eager(ids, attention_mask=mask).logits[real], atol=2e-5, rtol=2e-5)


def test_head_dim_outside_the_kernels_falls_back():
    config = transformers.LlamaConfig(**{**COMMON, "num_attention_heads": 8})  # head_dim 8
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    eager = transformers.LlamaForCausalLM(config).eval()
    fast = copy.deepcopy(eager)
    fast.set_attn_implementation("fastllm")
    ids, mask = batch("right")
    fastllm_hf._warned.clear()
    with pytest.warns(UserWarning, match="head_dim 8"):
        got = fast(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], eager(ids, attention_mask=mask).logits[real], atol=2e-5, rtol=2e-5)


def test_mask_pattern_recognises_transformers_masks():
    mu = transformers.masking_utils
    assert fastllm_hf.mask_pattern(mu.causal_mask_function) == (None, 0)
    assert fastllm_hf.mask_pattern(mu.bidirectional_mask_function) == (None, None)
    assert fastllm_hf.mask_pattern(mu.sliding_window_causal_mask_function(5)) == (4, 0)
    assert fastllm_hf.mask_pattern(mu.sliding_window_bidirectional_mask_function(5)) == (5, 5)
    assert fastllm_hf.mask_pattern(mu.chunked_causal_mask_function(4, torch.zeros(1, dtype=torch.long))) is None
    assert fastllm_hf.mask_pattern(mu.and_masks(mu.causal_mask_function, lambda *a: True)) is None
    # each recognised pattern is what transformers' mask is
    for fn in (mu.sliding_window_causal_mask_function(5), mu.sliding_window_bidirectional_mask_function(3)):
        dense = mu.sdpa_mask(batch_size=1, q_length=9, kv_length=9, mask_function=fn, allow_is_causal_skip=False)
        left, right = fastllm_hf.mask_pattern(fn)
        from fastllm.kernels.attention_reference import attention_mask

        assert torch.equal(dense[0, 0], attention_mask(9, 9, False, (left, -1 if right is None else right)))


@pytest.mark.parametrize("make,message", [
    (lambda: transformers.CohereForCausalLM(transformers.CohereConfig(**{**COMMON, "num_key_value_heads": 4})),
     "CohereForCausalLM is not a causal LM whose forward fastllm knows"),
    (lambda: torch.nn.Linear(2, 2), "PreTrainedModel"),
])
def test_apply_refuses_what_it_cannot_fuse(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fastllm_hf.apply(make())


def test_apply_refuses_a_custom_loss():
    _, fast = model_pair("llama")
    fast.loss_function = lambda *a, **k: torch.zeros(())
    with pytest.raises(ValueError, match="custom loss"):
        fastllm_hf.apply(fast)
    fastllm_hf.apply(fast, fused_loss=False)  # the attention alone is fine
    assert fast.config._attn_implementation == "fastllm"


OTHER_FAMILIES = {
    "qwen3": lambda t: t.Qwen3Config(num_key_value_heads=2, head_dim=16, **COMMON),
    "gemma": lambda t: t.GemmaConfig(num_key_value_heads=1, head_dim=16, **COMMON),
    "gemma3_text": lambda t: t.Gemma3TextConfig(num_key_value_heads=2, head_dim=16, sliding_window=4,
                                                final_logit_softcapping=2.0, attn_logit_softcapping=4.0, **COMMON),
    "phi3": lambda t: t.Phi3Config(num_key_value_heads=2, **COMMON),
    "olmo2": lambda t: t.Olmo2Config(num_key_value_heads=2, **COMMON),
    "starcoder2": lambda t: t.Starcoder2Config(num_key_value_heads=2, sliding_window=4, **COMMON),
}


@pytest.mark.parametrize("family", sorted(OTHER_FAMILIES))
def test_apply_on_the_other_listed_families(family):
    """Every other class apply() lists: eager's loss, gradients and eval logits (right padding),
    on the PyTorch reference (the kernels themselves are covered above)."""
    config = OTHER_FAMILIES[family](transformers)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    eager = transformers.AutoModelForCausalLM.from_config(config)
    fast = copy.deepcopy(eager)
    assert f"{type(fast).__module__}.{type(fast).__qualname__}" in fastllm_hf.FUSED_LOSS_CLASSES
    fastllm_hf.apply(fast)
    ids, mask = batch("right")
    labels = labels_of(ids, mask)
    with force_backend("reference"):
        got = fast(ids, attention_mask=mask, labels=labels)
        got.loss.backward()
        ref = eager(ids, attention_mask=mask, labels=labels)
        ref.loss.backward()
        assert got.logits is None
        torch.testing.assert_close(got.loss, ref.loss, atol=1e-6, rtol=1e-6)
        assert_grads_close(eager, fast)
        fast.eval()
        eager.eval()
        real = real_positions(mask)
        torch.testing.assert_close(fast(ids, attention_mask=mask).logits[real],
                                   eager(ids, attention_mask=mask).logits[real], atol=2e-5, rtol=2e-5)
