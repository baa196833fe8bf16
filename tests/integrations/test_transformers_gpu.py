"""attn_implementation="fastllm" and apply(...) with the compiled kernels (needs a CUDA GPU)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu
transformers = pytest.importorskip("transformers")

import fastllm.integrations.transformers as fastllm_hf  # noqa: E402


def _pair(dtype):
    config = transformers.LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    eager = transformers.LlamaForCausalLM(config).to("cuda", dtype)
    fast = transformers.LlamaForCausalLM(config.__class__.from_dict(config.to_dict())).to("cuda", dtype)
    fast.load_state_dict(eager.state_dict())
    return eager, fastllm_hf.apply(fast)


def _batch():
    ids = torch.randint(0, 1000, (3, 700), device="cuda")
    mask = torch.ones_like(ids)
    mask[1, 500:] = 0
    mask[2, 90:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def test_training_step_is_eagers_fp32():
    eager, fast = _pair(torch.float32)
    ids, mask, labels = _batch()
    ref = eager(ids, attention_mask=mask, labels=labels)
    got = fast(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.loss, ref.loss, atol=1e-5, rtol=1e-5)
    ref.loss.backward()
    got.loss.backward()
    for (name, a), (_, b) in zip(eager.named_parameters(), fast.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=2e-4, rtol=2e-3, msg=lambda m: f"{name}: {m}")


def test_training_step_bf16_is_close_to_sdpa():
    eager, fast = _pair(torch.bfloat16)
    eager.set_attn_implementation("sdpa")
    ids, mask, labels = _batch()
    ref = eager(ids, attention_mask=mask, labels=labels).loss
    got = fast(ids, attention_mask=mask, labels=labels).loss
    assert abs(got.item() - ref.item()) < 2e-2 * abs(ref.item())


def test_left_padded_generation_is_eagers():
    eager, fast = _pair(torch.float32)
    eager.eval()
    fast.eval()
    ids, mask, _ = _batch()
    mask = mask.flip(1)  # left padding
    kwargs = dict(attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(fast.generate(ids, **kwargs), eager.generate(ids, **kwargs))
