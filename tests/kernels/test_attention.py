"""flash_attention / flash_decode against float64 references (Triton interpreter on CPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings, strategies as st

from fastllm.kernels import flash_attention, flash_decode, force_backend
from fastllm.kernels import configs
from fastllm.kernels.attention_reference import attention_mask, attention_reference
from fastllm.kernels.checks import normalize_window
from fastllm.kernels.configs import AttnConfig

from tests.support.kernel_checks import DEVICE, TOL, assert_close, randn

# log2(0) for rows that see no key is intended (-inf log-sum-exp)
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")

# shrinking interpreted kernels takes minutes; the failing example is reported as drawn
NO_SHRINK = [Phase.explicit, Phase.generate]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def make_qkv(b, h, hk, nq, nk, d, dtype, seed, noncontig=False):
    """Random q, k, v leaves. ``noncontig``: stored (batch, seq, heads, dim) and transposed,
    like a model's projections, with head_dim sliced out of a wider buffer."""
    if noncontig:
        q = randn((b, nq, h, d + 3), dtype, seed)[..., :d].transpose(1, 2)
        k = randn((b, nk, hk, d + 3), dtype, seed + 1)[..., 1 : d + 1].transpose(1, 2)
        v = randn((b, nk, hk, d + 3), dtype, seed + 2)[..., 2 : d + 2].transpose(1, 2)
    else:
        q = randn((b, h, nq, d), dtype, seed)
        k = randn((b, hk, nk, d), dtype, seed + 1)
        v = randn((b, hk, nk, d), dtype, seed + 2)
    return [t.requires_grad_() for t in (q, k, v)]


def check_attention(b, h, hk, nq, nk, d, dtype, causal, window, softcap, seed, noncontig=False, config=None, scale=None):
    q, k, v = make_qkv(b, h, hk, nq, nk, d, dtype, seed, noncontig)
    out, lse = flash_attention(q, k, v, causal=causal, window=window, softcap=softcap, scale=scale, return_lse=True, config=config)
    dout = randn(out.shape, dtype, seed + 3)
    out.backward(dout)

    q64, k64, v64 = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref, ref_lse = attention_reference(
        q64, k64, v64, scale if scale is not None else d**-0.5, normalize_window(window, causal), softcap or 0.0
    )
    ref.backward(dout.double())
    tol, gtol = TOL[dtype]
    assert out.dtype == dtype and lse.dtype == torch.float32
    assert_close(out, ref, tol, "out")
    assert_close(lse, ref_lse, 1e-4, "lse")
    assert_close(q.grad, q64.grad, gtol, "dq")
    assert_close(k.grad, k64.grad, gtol, "dk")
    assert_close(v.grad, v64.grad, gtol, "dv")
    assert q.grad.shape == q.shape and k.grad.shape == k.shape


@settings(deadline=None, max_examples=36, derandomize=True, phases=NO_SHRINK)
@given(
    b=st.integers(1, 2),
    hk=st.integers(1, 2),
    group=st.sampled_from([1, 2, 3]),
    nq=st.integers(1, 80),
    nk=st.integers(1, 80),
    d=st.sampled_from([16, 24, 40, 64, 80, 128]),
    dtype=st.sampled_from(DTYPES),
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(0, 40), st.tuples(st.integers(-1, 30), st.integers(-1, 30))),
    softcap=st.one_of(st.none(), st.floats(2.0, 30.0)),
    noncontig=st.booleans(),
    tiles=st.sampled_from([None, None, AttnConfig(16, 16, 4, 1), AttnConfig(32, 16, 4, 1), AttnConfig(16, 32, 4, 1)]),
    seed=st.integers(0, 2**16),
)
def test_flash_attention_random(b, hk, group, nq, nk, d, dtype, causal, window, softcap, noncontig, tiles, seed):
    """Small tiles make masked and unmasked KV tiles, loops and partial tiles all occur."""
    check_attention(b, hk * group, hk, nq, nk, d, dtype, causal, window, softcap, seed, noncontig, config=tiles)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "nq,nk,causal,window",
    [(70, 70, True, None), (45, 77, True, 20), (77, 45, False, (9, 17)), (50, 33, True, None)],
)
def test_small_tiles_exercise_loops_and_masks(nq, nk, causal, window, dtype):
    """16x16 tiles: several KV iterations per program, partial tiles at both ends."""
    check_attention(1, 4, 2, nq, nk, 32, dtype, causal, window, 5.0 if window else None, seed=nq * nk,
                    config=AttnConfig(16, 16, 4, 1))


def test_custom_scale():
    check_attention(1, 2, 2, 33, 40, 32, torch.float32, True, None, None, seed=7, scale=0.37)


def test_reference_matches_torch_sdpa():
    """The oracle itself against torch SDPA with an independently built bottom-right mask."""
    b, h, hk, nq, nk, d = 2, 6, 2, 23, 57, 32
    q, k, v = (randn(s, torch.float64, i) for i, s in enumerate([(b, h, nq, d), (b, hk, nk, d), (b, hk, nk, d)]))
    for causal, window in [(False, None), (True, None), (True, 10), (False, (4, 7))]:
        left, right = normalize_window(window, causal)
        mask = torch.ones(nq, nk, dtype=torch.bool)
        if right is not None:
            mask = mask.tril(diagonal=nk - nq + right)
        if left is not None:
            mask = mask & torch.ones(nq, nk, dtype=torch.bool).triu(diagonal=nk - nq - left)
        expect = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        got, lse = attention_reference(q, k, v, d**-0.5, (left, right))
        assert_close(got, expect, 1e-12, f"reference causal={causal} window={window}")
        kk = k.repeat_interleave(h // hk, 1)
        scores = (q @ kk.transpose(-1, -2) * d**-0.5).masked_fill(~mask, -math.inf)
        assert_close(lse, scores.logsumexp(-1), 1e-12, "reference lse")


def test_attention_mask_is_the_kernels_mask():
    """attention_mask(q_len, kv_len, causal, window): torch's tril for square causal masks,
    bottom-right aligned otherwise, and as an SDPA mask it reproduces flash_attention."""
    assert torch.equal(attention_mask(5, 5, True), torch.ones(5, 5, dtype=torch.bool).tril())
    assert torch.equal(attention_mask(3, 7, True), torch.ones(3, 7, dtype=torch.bool).tril(diagonal=4))
    assert torch.equal(attention_mask(4, 6, False), torch.ones(4, 6, dtype=torch.bool))
    assert attention_mask(2, 3, True, device="meta").device.type == "meta"
    q, k, v = (t.detach() for t in make_qkv(1, 2, 2, 11, 19, 16, torch.float64, seed=21))
    for causal, window in [(True, None), (True, 5), (False, 3), (False, (2, -1)), (True, (-1, 4))]:
        mask = attention_mask(11, 19, causal, window)
        expect = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        with force_backend("reference"):
            got = flash_attention(q.float(), k.float(), v.float(), causal=causal, window=window)
        assert_close(got, expect, 1e-5, f"causal={causal} window={window}")


def test_configs_are_keyed_by_kernel_and_dtype(monkeypatch):
    """Every attention kernel has a table per precision over the same head dims, and a
    launch picks its own: override, else the interpreter's, else (kernel, dtype, head dim)."""
    kernels = sorted({kernel for kernel, _ in configs.ATTN})
    assert kernels == sorted(configs.ATTN_INTERPRET)
    for kernel in kernels:
        for precision in (configs.HALF, configs.FP32):
            assert sorted(configs.ATTN[kernel, precision]) == [16, 32, 64, 128, 256]
    custom = AttnConfig(16, 16, 4, 1)
    assert configs.attn_config("attn_fwd_kernel", 64, torch.float16, custom) is custom
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert configs.attn_config("attn_bwd_dq_kernel", 100, torch.float32) == configs.ATTN["attn_bwd_dq_kernel", "fp32"][128]
    assert configs.attn_config("attn_fwd_kernel", 64, torch.bfloat16) is configs.ATTN["attn_fwd_kernel", "half"][64]
    assert configs.ce_config("ce_fwd_kernel", 256) == configs.CEConfig(256, configs.CE["ce_fwd_kernel"].num_warps)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert configs.attn_config("attn_decode_split_kernel", 64, torch.float16) == configs.ATTN_INTERPRET["attn_decode_split_kernel"]
    assert configs.ce_config("ce_bwd_kernel") == configs.CE_INTERPRET


def test_rows_without_keys_are_zero():
    """causal with q_len > kv_len: the first q_len - kv_len queries see nothing."""
    q, k, v = make_qkv(1, 2, 1, 40, 25, 32, torch.float32, seed=3)
    out, lse = flash_attention(q, k, v, causal=True, return_lse=True)
    assert torch.equal(out[:, :, :15], torch.zeros_like(out[:, :, :15]))
    assert torch.isinf(lse[:, :, :15]).all() and (lse[:, :, :15] < 0).all()
    assert torch.isfinite(lse[:, :, 15:]).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.equal(q.grad[:, :, :15], torch.zeros_like(q.grad[:, :, :15]))


def test_return_lse_flag_and_lse_not_differentiable():
    q, k, v = make_qkv(1, 2, 2, 9, 9, 16, torch.float32, seed=4)
    out = flash_attention(q, k, v)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape
    out, lse = flash_attention(q, k, v, return_lse=True)
    assert not lse.requires_grad and out.requires_grad


def test_reference_backend_agrees_with_triton():
    q, k, v = make_qkv(2, 4, 2, 31, 47, 48, torch.float16, seed=5)
    fast = flash_attention(q, k, v, causal=True, softcap=8.0, window=12)
    with force_backend("reference"):
        slow = flash_attention(q, k, v, causal=True, softcap=8.0, window=12)
    assert slow.dtype == torch.float16
    assert_close(fast, slow, TOL[torch.float16][0], "triton vs reference backend")


# ---------------------------------------------------------------- decode


def check_decode(b, h, hk, nq, nk, d, dtype, causal, window, softcap, seed, num_splits=None):
    q, k, v = (t.detach() for t in make_qkv(b, h, hk, nq, nk, d, dtype, seed))
    out, lse = flash_decode(q, k, v, causal=causal, window=window, softcap=softcap, return_lse=True, num_splits=num_splits)
    ref, ref_lse = attention_reference(q.double(), k.double(), v.double(), d**-0.5, normalize_window(window, causal), softcap or 0.0)
    assert_close(out, ref, TOL[dtype][0], "decode out")
    assert_close(lse, ref_lse, 1e-4, "decode lse")


@settings(deadline=None, max_examples=20, derandomize=True, phases=NO_SHRINK)
@given(
    hk=st.integers(1, 2),
    group=st.sampled_from([1, 2, 4, 8]),
    nq=st.integers(1, 5),
    nk=st.integers(1, 300),
    d=st.sampled_from([16, 40, 64, 128]),
    dtype=st.sampled_from(DTYPES),
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(0, 100)),
    softcap=st.one_of(st.none(), st.floats(2.0, 30.0)),
    num_splits=st.one_of(st.none(), st.integers(1, 7)),
    seed=st.integers(0, 2**16),
)
def test_flash_decode_random(hk, group, nq, nk, d, dtype, causal, window, softcap, num_splits, seed):
    check_decode(1, hk * group, hk, nq, nk, d, dtype, causal, window, softcap, seed, num_splits)


def test_decode_many_rows_uses_several_row_blocks():
    check_decode(2, 8, 1, 7, 90, 32, torch.float32, True, None, None, seed=11, num_splits=3)


def test_flash_attention_picks_decode_kernel_for_inference(monkeypatch):
    import fastllm.kernels.attention_decode as dec

    calls = []
    real = dec.decode_forward
    monkeypatch.setattr(dec, "decode_forward", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    q, k, v = (t.detach() for t in make_qkv(1, 4, 1, 1, 600, 32, torch.float32, seed=12))
    out = flash_attention(q, k, v, causal=True)
    assert calls == [1]
    ref, _ = attention_reference(q.double(), k.double(), v.double(), 32**-0.5, (None, 0))
    assert_close(out, ref, 1e-4, "auto decode")
    q.requires_grad_()
    flash_attention(q, k, v, causal=True).sum().backward()  # training path, not decode
    assert calls == [1] and q.grad is not None


# ---------------------------------------------------------------- errors


def _t(*shape, dtype=torch.float16):
    return torch.randn(*shape).to(dtype)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((_t(2, 4, 8), _t(2, 4, 8), _t(2, 4, 8)), {}, ValueError, "4 dimensions"),
        ((_t(1, 4, 8, 32), _t(1, 4, 8, 32), _t(1, 4, 8, 32, dtype=torch.float32)), {}, TypeError, "v is torch.float32"),
        ((_t(1, 4, 8, 32, dtype=torch.float64),) * 3, {}, TypeError, "float64"),
        ((_t(1, 4, 8, 32), _t(1, 3, 8, 32), _t(1, 3, 8, 32)), {}, ValueError, "divide"),
        ((_t(1, 4, 8, 32), _t(2, 4, 8, 32), _t(2, 4, 8, 32)), {}, ValueError, "batch"),
        ((_t(1, 4, 8, 32), _t(1, 4, 8, 16), _t(1, 4, 8, 16)), {}, ValueError, "head_dim"),
        ((_t(1, 4, 8, 32), _t(1, 4, 8, 32), _t(1, 4, 9, 32)), {}, ValueError, "same shape"),
        ((_t(1, 4, 8, 8),) * 3, {}, ValueError, "head_dim 8 is not supported"),
        ((_t(1, 1, 8, 512),) * 3, {}, ValueError, "head_dim 512"),
        ((_t(1, 4, 8, 32),) * 3, {"window": -3}, ValueError, "window"),
        ((_t(1, 4, 8, 32),) * 3, {"window": (1, 2, 3)}, TypeError, "window"),
        ((_t(1, 4, 8, 32),) * 3, {"scale": -1.0}, ValueError, "scale"),
        ((_t(1, 4, 8, 32),) * 3, {"softcap": 0.0}, ValueError, "softcap"),
        (([1.0], _t(1, 4, 8, 32), _t(1, 4, 8, 32)), {}, TypeError, "q must be a torch.Tensor"),
    ],
)
def test_bad_arguments_raise(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        flash_attention(*args, **kwargs)
    if isinstance(args[0], torch.Tensor):
        with pytest.raises(exc, match=match):
            flash_decode(*args, **kwargs)


def test_decode_bad_num_splits():
    q = _t(1, 2, 1, 32)
    with pytest.raises(ValueError, match="num_splits"):
        flash_decode(q, q, q, num_splits=0)


def test_batch_or_heads_beyond_the_cuda_grid_raise():
    """Heads and batch ride CUDA grid axes 1 and 2 (at most 65535 programs each): past that
    the Triton path says so before launching; the reference path has no such limit."""
    for shape in ((65536, 1, 1, 16), (1, 65536, 1, 16)):
        q = _t(*shape, dtype=torch.float32)
        with force_backend("triton"):
            with pytest.raises(ValueError, match="65535"):
                flash_attention(q, q, q)
            with pytest.raises(ValueError, match="65535"):
                flash_decode(q, q, q)
        with force_backend("reference"):
            assert flash_attention(q, q, q).shape == q.shape


def test_slices_beyond_int32_offsets_are_copied_or_refused():
    """One (batch, head) slice is addressed with int32 offsets: a strided tensor whose slice
    reaches past 2**31 elements is made contiguous; one that is too big even then is refused.
    (Meta tensors: strides without storage.)"""
    from fastllm.kernels.checks import int32_addressable

    ok = torch.empty_strided((2, 3, 5, 16), (240, 80, 16, 1), device="meta")
    assert int32_addressable("q", ok) is ok
    far = torch.empty_strided((1, 2, 3, 16), (0, 16, 2**30, 1), device="meta")
    fixed = int32_addressable("q", far)
    assert fixed.stride() == (96, 48, 16, 1)
    edge = torch.empty((1, 1, 2**27, 16), device="meta")  # last offset 2**31 - 1
    assert int32_addressable("k", edge) is edge
    with pytest.raises(ValueError, match="2\\*\\*31"):
        int32_addressable("k", torch.empty((1, 1, 2**27 + 1, 16), device="meta"))


def test_launchers_make_int32_addressable(monkeypatch):
    """forward, decode and backward pass every input through int32_addressable."""
    from fastllm.kernels import checks

    seen = []
    real = checks.int32_addressable
    monkeypatch.setattr(checks, "int32_addressable", lambda name, t: seen.append(name) or real(name, t))
    q, k, v = make_qkv(1, 2, 1, 5, 7, 16, torch.float32, seed=3)
    with force_backend("triton"):
        flash_attention(q, k, v, causal=True).sum().backward()
        flash_decode(q.detach(), k.detach(), v.detach())
    assert seen == ["q", "k", "v", "dout", "q", "k", "v", "q", "k", "v"]
