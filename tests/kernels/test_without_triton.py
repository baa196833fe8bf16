"""fastllm.kernels where Triton cannot be imported (macOS, Windows): the PyTorch references run.

Runs in a subprocess that cannot see ``triton`` or ``triton.*`` (tests/support/blocked_imports.py)
and records which module asked for it. fastllm must not ask at import time, nor on the CPU
without ``TRITON_INTERPRET`` (torch itself may ask: that is allowed).
"""

from __future__ import annotations

from tests.support.blocked_imports import run_without

SCRIPT = """
    import os

    def asked_by_fastllm():
        return asked_by("fastllm")

    import torch
    import torch.nn.functional as F

    import fastllm.kernels as K
    from fastllm.kernels import dispatch
    from fastllm.kernels.attention_reference import attention_reference
    from fastllm.kernels.cross_entropy_reference import cross_entropy_reference

    assert "triton" not in sys.modules
    assert asked_by_fastllm() == [], f"import fastllm.kernels asked for triton: {asked_by_fastllm()}"

    torch.manual_seed(0)
    close = torch.testing.assert_close

    # attention: flash_attention, flash_decode, the SDPA drop-in
    q = torch.randn(1, 4, 5, 16, requires_grad=True)
    k = torch.randn(1, 2, 7, 16, requires_grad=True)
    v = torch.randn(1, 2, 7, 16, requires_grad=True)
    out = K.flash_attention(q, k, v, causal=True)
    ref, _ = attention_reference(q, k, v, 16**-0.5, (None, 0))
    close(out, ref)
    out.sum().backward()
    assert all(t.grad is not None and bool(torch.isfinite(t.grad).all()) for t in (q, k, v))
    with torch.no_grad():
        close(K.flash_decode(q, k, v, causal=True), ref)
    padded = K.flash_attention(q, k, v, causal=True, key_start=[2], query_end=[4])
    rows = (torch.tensor([2]), torch.tensor([7]), torch.tensor([4]))
    close(padded, attention_reference(q, k, v, 16**-0.5, (None, 0), 0.0, rows)[0])
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    close(K.scaled_dot_product_attention(q, kk, vv, is_causal=True), F.scaled_dot_product_attention(q, kk, vv, is_causal=True))

    # losses: the functions and their modules, with gradients
    logits = torch.randn(6, 11, requires_grad=True)
    target = torch.tensor([1, 2, -100, 3, 10, 0])
    loss = K.cross_entropy(logits, target, z_loss=1e-3)
    close(loss, cross_entropy_reference(logits, target, z_loss=1e-3))
    close(loss, F.cross_entropy(logits, target) + 1e-3 * (logits.logsumexp(-1)[target != -100] ** 2).mean())
    loss.backward()
    ref_logits = logits.detach().clone().requires_grad_()
    cross_entropy_reference(ref_logits, target, z_loss=1e-3).backward()
    close(logits.grad, ref_logits.grad)
    close(K.CrossEntropyLoss(reduction="sum")(logits, target), cross_entropy_reference(logits, target, reduction="sum"))

    hidden = torch.randn(6, 8, requires_grad=True)
    weight = torch.randn(11, 8, requires_grad=True)
    loss = K.linear_cross_entropy(hidden, weight, target)
    close(loss, F.cross_entropy(hidden @ weight.T, target))
    loss.backward()
    assert hidden.grad is not None and weight.grad is not None
    close(K.LinearCrossEntropyLoss(reduction="none")(hidden, weight, target),
          cross_entropy_reference(hidden @ weight.T, target, reduction="none"))

    # the model: its loss, and its fused loss on the reference path
    from fastllm.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=32))
    idx = torch.randint(0, 50, (2, 9))
    targets = torch.randint(0, 50, (2, 9))
    targets[0, :3] = -100
    plain = model(idx, targets)[1]
    assert bool(torch.isfinite(plain))
    plain.backward()
    if hasattr(model, "fused_loss"):
        model.fused_loss = True
        close(model(idx, targets)[1], plain, rtol=1e-5, atol=1e-5)

    assert asked_by_fastllm() == [], f"the CPU reference path asked for triton: {asked_by_fastllm()}"

    # even where the Triton kernels would run (interpreter), "auto" falls back to the reference
    os.environ["TRITON_INTERPRET"] = "1"
    x = torch.zeros(1)
    assert dispatch.select_backend(x) == "reference"
    close(K.cross_entropy(logits, target), cross_entropy_reference(logits, target))
    with K.force_backend("triton"):
        try:
            dispatch.select_backend(x)
        except RuntimeError as exc:
            assert "Triton cannot be imported" in str(exc), exc
        else:
            raise AssertionError("a forced triton backend without Triton must raise")
    assert "triton" not in sys.modules
    print("OK")
"""


def test_kernels_work_without_triton():
    proc = run_without({"triton"}, SCRIPT, env_drop=("TRITON_INTERPRET", "FASTLLM_KERNELS"))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr[-4000:]
