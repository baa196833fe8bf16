"""The SDPA drop-in and the backend switch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import fastllm.kernels as K
from fastllm.kernels import dispatch, force_backend, scaled_dot_product_attention

from tests.support.kernel_checks import DEVICE, TOL, assert_close, randn


def qkv(b, h, hk, nq, nk, d, dtype, seed):
    return [randn(s, dtype, seed + i).requires_grad_() for i, s in enumerate([(b, h, nq, d), (b, hk, nk, d), (b, hk, nk, d)])]


@pytest.mark.parametrize(
    "h,hk,nq,nk,causal,gqa,scale",
    [(2, 2, 20, 20, True, False, None), (4, 2, 13, 29, True, True, 0.3), (2, 2, 29, 13, True, False, None),
     (3, 1, 17, 17, False, True, None)],
)
def test_sdpa_matches_torch_including_top_left_causal(h, hk, nq, nk, causal, gqa, scale, monkeypatch):
    calls = []
    import fastllm.kernels.attention_fwd as fwd

    real = fwd.attention_forward
    monkeypatch.setattr(fwd, "attention_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    q, k, v = qkv(1, h, hk, nq, nk, 32, torch.float32, seed=nq)
    out = scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale, enable_gqa=gqa)
    assert calls == [1], "the Triton kernel should have run"
    dout = randn(out.shape, torch.float32, 99)
    out.backward(dout)
    q2, k2, v2 = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = F.scaled_dot_product_attention(q2, k2, v2, is_causal=causal, scale=scale, enable_gqa=gqa)
    ref.backward(dout.double())
    tol, gtol = TOL[torch.float32]
    assert_close(out, ref, tol, "sdpa out")
    for a, b_, name in ((q, q2, "dq"), (k, k2, "dk"), (v, v2, "dv")):
        assert_close(a.grad, b_.grad, gtol, name)


@pytest.mark.parametrize(
    "kwargs,shape_fn",
    [
        ({"attn_mask": torch.ones(9, 9, dtype=torch.bool)}, None),
        ({"dropout_p": 0.5}, None),
        ({"scale": -1.0}, None),
        ({}, "3d"),
        ({}, "gqa_without_flag"),
        ({}, "head_dim_8"),
        ({}, "float64"),
        ({}, "batch_beyond_grid"),
    ],
)
def test_sdpa_falls_back_to_torch(kwargs, shape_fn, monkeypatch):
    import fastllm.kernels.attention_fwd as fwd

    monkeypatch.setattr(fwd, "attention_forward", lambda *a, **k: pytest.fail("Triton path must not run"))
    q, k, v = (randn((1, 2, 9, 16), torch.float32, i) for i in range(3))
    if shape_fn == "3d":
        q, k, v = q[0], k[0], v[0]
    elif shape_fn == "gqa_without_flag":
        k, v = k[:, :1], v[:, :1]
    elif shape_fn == "head_dim_8":
        q, k, v = q[..., :8], k[..., :8], v[..., :8]
    elif shape_fn == "float64":
        q, k, v = q.double(), k.double(), v.double()
    elif shape_fn == "batch_beyond_grid":  # more than CUDA's 65535 programs along a grid axis
        q, k, v = (randn((65536, 1, 1, 16), torch.float32, i) for i in range(3))
    torch.manual_seed(0)
    try:
        expect = F.scaled_dot_product_attention(q, k, v, **kwargs)
    except RuntimeError:  # torch rejects it (GQA without enable_gqa): so must we
        assert shape_fn == "gqa_without_flag"
        with pytest.raises(RuntimeError):
            scaled_dot_product_attention(q, k, v, **kwargs)
        return
    torch.manual_seed(0)
    got = scaled_dot_product_attention(q, k, v, **kwargs)
    assert torch.equal(got, expect)


def test_sdpa_signature_matches_torch():
    import inspect

    params = list(inspect.signature(scaled_dot_product_attention).parameters)
    assert params == ["query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"]


def test_env_var_and_force_backend(monkeypatch):
    monkeypatch.setenv("FASTLLM_KERNELS", "reference")
    x = torch.zeros(1, device=DEVICE)
    assert dispatch.select_backend(x) == "reference"
    with force_backend("triton"):
        assert dispatch.select_backend(x) == "triton"
        with force_backend("reference"):
            assert dispatch.select_backend(x) == "reference"
        assert dispatch.requested_backend() == "triton"
    monkeypatch.setenv("FASTLLM_KERNELS", "auto")
    assert dispatch.select_backend(x) == "triton"  # interpreter on CPU, or CUDA
    monkeypatch.setenv("FASTLLM_KERNELS", "fast")
    with pytest.raises(ValueError, match="FASTLLM_KERNELS='fast'"):
        dispatch.select_backend(x)
    with pytest.raises(ValueError, match="backend 'gpu'"):
        with force_backend("gpu"):
            pass


@pytest.mark.skipif(DEVICE == "cuda", reason="CPU dispatch rule")
def test_cpu_without_interpreter_uses_reference(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.delenv("FASTLLM_KERNELS", raising=False)
    x = torch.zeros(1)
    assert dispatch.select_backend(x) == "reference"
    monkeypatch.setenv("FASTLLM_KERNELS", "triton")
    with pytest.raises(RuntimeError, match="need CUDA tensors"):
        dispatch.select_backend(x)


def test_reference_path_needs_no_triton_kernels(monkeypatch):
    """With the reference backend forced, no Triton kernel module is touched."""
    import importlib

    import fastllm.kernels.attention_fwd as fwd

    cek = importlib.import_module("fastllm.kernels.cross_entropy")  # the package attribute is the function

    monkeypatch.setattr(fwd, "attention_forward", lambda *a, **k: pytest.fail("kernel launched"))
    monkeypatch.setattr(cek, "ce_forward", lambda *a, **k: pytest.fail("kernel launched"))
    q, k, v = qkv(1, 2, 1, 5, 7, 16, torch.float32, 3)
    with force_backend("reference"):
        out = K.flash_attention(q, k, v, causal=True)
        out.sum().backward()
        loss = K.cross_entropy(randn((3, 11), torch.float32, 4), torch.tensor([1, 2, 3], device=DEVICE))
    assert q.grad is not None and torch.isfinite(loss)
