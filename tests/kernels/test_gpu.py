"""The same checks at realistic sizes with compiled kernels (needs a CUDA GPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastllm.kernels import cross_entropy, flash_attention, flash_decode, linear_cross_entropy, scaled_dot_product_attention
from fastllm.kernels.attention_reference import attention_reference
from fastllm.kernels.checks import normalize_window
from fastllm.kernels.cross_entropy_reference import cross_entropy_reference

from tests.support.kernel_checks import TOL, assert_close

pytestmark = pytest.mark.gpu


def _rand(shape, dtype, seed, scale=1.0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return (torch.randn(shape, generator=g, device="cuda", dtype=torch.float32) * scale).to(dtype)


@pytest.mark.parametrize("dtype,d", [(torch.bfloat16, 64), (torch.bfloat16, 128), (torch.float16, 128), (torch.float32, 64)])
@pytest.mark.parametrize(
    "nq,nk,h,hk,causal,window,softcap",
    [(1024, 1024, 8, 8, True, None, None), (777, 2049, 8, 2, True, None, None), (1500, 1500, 4, 1, False, 256, 30.0)],
)
def test_attention_gpu(dtype, d, nq, nk, h, hk, causal, window, softcap):
    q = _rand((2, h, nq, d), dtype, 1).requires_grad_()
    k = _rand((2, hk, nk, d), dtype, 2).requires_grad_()
    v = _rand((2, hk, nk, d), dtype, 3).requires_grad_()
    out, lse = flash_attention(q, k, v, causal=causal, window=window, softcap=softcap, return_lse=True)
    dout = _rand(out.shape, dtype, 4)
    out.backward(dout)
    q64, k64, v64 = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref, ref_lse = attention_reference(q64, k64, v64, d**-0.5, normalize_window(window, causal), softcap or 0.0)
    ref.backward(dout.double())
    tol, gtol = TOL[dtype]
    assert_close(out, ref, tol, "out")
    assert_close(lse, ref_lse, 1e-3, "lse")
    for a, b, name in ((q, q64, "dq"), (k, k64, "dk"), (v, v64, "dv")):
        assert_close(a.grad, b.grad, gtol, name)


@pytest.mark.parametrize("d", [16, 40, 96, 256])
def test_attention_gpu_other_head_dims(d):
    q, k, v = (_rand((1, 4, 300, d), torch.bfloat16, i).requires_grad_() for i in range(3))
    out = flash_attention(q, k, v, causal=True)
    out.sum().backward()
    q64, k64, v64 = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref, _ = attention_reference(q64, k64, v64, d**-0.5, (None, 0))
    ref.sum().backward()
    assert_close(out, ref, TOL[torch.bfloat16][0], "out")
    assert_close(q.grad, q64.grad, TOL[torch.bfloat16][1], "dq")


@pytest.mark.parametrize(
    "dtype,d,causal,window",
    [(torch.bfloat16, 128, True, None), (torch.bfloat16, 64, True, 300), (torch.float16, 128, False, None)],
)
def test_attention_gpu_padded_batch(dtype, d, causal, window):
    """Left padding, right padding and a full row in one batch, compiled kernels, against the
    float64 reference with the same rows (checked row by row on the CPU tests)."""
    n, h, hk = 1500, 8, 2
    q = _rand((3, h, n, d), dtype, 11).requires_grad_()
    k = _rand((3, hk, n, d), dtype, 12).requires_grad_()
    v = _rand((3, hk, n, d), dtype, 13).requires_grad_()
    rows = (torch.tensor([0, 333, 0], device="cuda"), torch.tensor([n, n, 1027], device="cuda"),
            torch.tensor([n, n, 1027], device="cuda"))
    out, lse = flash_attention(q, k, v, causal=causal, window=window, return_lse=True,
                               key_start=rows[0], key_end=rows[1], query_end=rows[2])
    dout = _rand(out.shape, dtype, 14)
    out.backward(dout)
    q64, k64, v64 = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref, ref_lse = attention_reference(q64, k64, v64, d**-0.5, normalize_window(window, causal), 0.0, rows)
    ref.backward(dout.double())
    tol, gtol = TOL[dtype]
    assert_close(out, ref, tol, "out")
    assert_close(lse, ref_lse, 1e-3, "lse")
    for a, b, name in ((q, q64, "dq"), (k, k64, "dk"), (v, v64, "dv")):
        assert_close(a.grad, b.grad, gtol, name)


def test_decode_gpu_ragged_cache():
    hk, group, nk, d = 4, 8, 8191, 128
    q = _rand((3, hk * group, 1, d), torch.bfloat16, 15)
    k = _rand((3, hk, nk, d), torch.bfloat16, 16)
    v = _rand((3, hk, nk, d), torch.bfloat16, 17)
    rows = (torch.tensor([0, 100, 0], device="cuda"), torch.tensor([nk, 5000, 17], device="cuda"),
            torch.ones(3, dtype=torch.long, device="cuda"))
    out, lse = flash_decode(q, k, v, causal=True, return_lse=True, key_start=rows[0], key_end=rows[1], query_end=rows[2])
    ref, ref_lse = attention_reference(q.double(), k.double(), v.double(), d**-0.5, (None, 0), 0.0, rows)
    assert_close(out, ref, TOL[torch.bfloat16][0], "decode out")
    assert_close(lse, ref_lse, 1e-3, "decode lse")


@pytest.mark.parametrize("nq,group", [(1, 1), (1, 8), (4, 4)])
def test_decode_gpu(nq, group):
    hk, nk, d = 4, 8191, 128
    q = _rand((3, hk * group, nq, d), torch.bfloat16, 5)
    k = _rand((3, hk, nk, d), torch.bfloat16, 6)
    v = _rand((3, hk, nk, d), torch.bfloat16, 7)
    out, lse = flash_decode(q, k, v, causal=True, return_lse=True)
    ref, ref_lse = attention_reference(q.double(), k.double(), v.double(), d**-0.5, (None, 0))
    assert_close(out, ref, TOL[torch.bfloat16][0], "decode out")
    assert_close(lse, ref_lse, 1e-3, "decode lse")


def test_sdpa_gpu():
    q, k, v = (_rand((2, 8, 1024, 64), torch.bfloat16, i).requires_grad_() for i in range(3))
    ours = scaled_dot_product_attention(q, k, v, is_causal=True)
    theirs = F.scaled_dot_product_attention(*(t.detach().float() for t in (q, k, v)), is_causal=True)
    assert_close(ours, theirs, TOL[torch.bfloat16][0], "sdpa")


@pytest.mark.parametrize("vocab", [50257, 128256, 262144])
@pytest.mark.parametrize("inplace", [False, True])
def test_cross_entropy_gpu(vocab, inplace):
    n = 1024
    x = _rand((n, vocab), torch.bfloat16, 8, scale=4.0).requires_grad_()
    t = torch.randint(0, vocab, (n,), device="cuda")
    t[::7] = -100
    x64 = x.detach().double().requires_grad_()
    ref = cross_entropy_reference(x64, t, -100, "mean", 0.1, 1e-4, 30.0)
    ref.backward()
    loss = cross_entropy(x, t, label_smoothing=0.1, z_loss=1e-4, softcap=30.0, inplace_backward=inplace)
    loss.backward()
    assert_close(loss, ref, 1e-5, "loss")
    assert_close(x.grad, x64.grad, 1e-2, "dlogits")


def test_linear_cross_entropy_gpu():
    n, hd, vocab = 4096, 2048, 32000
    h = _rand((n, hd), torch.bfloat16, 9).requires_grad_()
    w = _rand((vocab, hd), torch.bfloat16, 10, scale=hd**-0.5).requires_grad_()
    t = torch.randint(0, vocab, (n,), device="cuda")
    loss = linear_cross_entropy(h, w, t)
    loss.backward()
    h32, w32 = [x.detach().float().requires_grad_() for x in (h, w)]
    ref = F.cross_entropy(h32 @ w32.T, t)
    ref.backward()
    assert_close(loss, ref, 1e-3, "loss")
    rel = lambda a, b: ((a.float() - b).norm() / b.norm()).item()  # noqa: E731
    assert rel(h.grad, h32.grad) < 1e-2
    assert rel(w.grad, w32.grad) < 1e-2
