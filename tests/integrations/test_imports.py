"""The integration where Triton is missing (CPU: the PyTorch reference), and fastllm where
transformers is missing (only the integration needs it). Subprocesses that cannot import the
package (tests/support/blocked_imports.py)."""

from __future__ import annotations

import pytest

from tests.support.blocked_imports import run_without

pytest.importorskip("transformers")

WITHOUT_TRITON = """
    import torch
    import transformers

    import fastllm.integrations.transformers as fastllm_hf

    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    config._attn_implementation = "eager"
    eager = transformers.LlamaForCausalLM(config).eval()
    fast = fastllm_hf.apply(transformers.LlamaForCausalLM(config.__class__.from_dict(config.to_dict())).eval())
    fast.load_state_dict(eager.state_dict())
    ids = torch.randint(0, 50, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, :3] = 0
    labels = ids.masked_fill(mask == 0, -100)
    labels[1, 3] = -100
    got, ref = fast(ids, attention_mask=mask, labels=labels), eager(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.loss, ref.loss)
    torch.testing.assert_close(got.logits[mask.bool()], ref.logits[mask.bool()])
    assert "triton" not in sys.modules
    assert asked_by("fastllm") == [], asked_by("fastllm")
    print("OK")
"""

WITHOUT_TRANSFORMERS = """
    import fastllm
    import fastllm.kernels
    import fastllm.model
    import fastllm.train
    import fastllm.integrations

    from fastllm.model import GPT, GPTConfig

    GPT(GPTConfig(vocab_size=40, block_size=8, n_layer=1, n_head=2, n_embd=32))
    try:
        import fastllm.integrations.transformers
    except ImportError as exc:
        assert "pip install" in str(exc), exc
    else:
        raise AssertionError("the integration imported without transformers")
    asked = [m for m in asked_by("fastllm") if m != "fastllm.integrations.transformers"]
    assert asked == [], asked
    assert "transformers" not in sys.modules
    print("OK")
"""


def test_integration_works_without_triton():
    proc = run_without({"triton"}, WITHOUT_TRITON, env_drop=("TRITON_INTERPRET", "FASTLLM_KERNELS"))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr[-4000:]


def test_fastllm_imports_without_transformers():
    proc = run_without({"transformers"}, WITHOUT_TRANSFORMERS)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr[-4000:]
