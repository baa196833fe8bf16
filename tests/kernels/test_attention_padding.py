"""Padded batches in the attention kernels (Triton interpreter on CPU) against float64 references.

The oracle of a padded batch is each row's own unpadded problem: row ``b`` is attention of
``q[b, :, :query_end]`` over ``k[b, :, key_start:key_end]`` with the plain (bottom-right
aligned) reference, its padding queries zero. That reference is itself checked against torch
SDPA in test_attention.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings, strategies as st

from fastllm.kernels import flash_attention, flash_decode, force_backend
from fastllm.kernels.attention_reference import attention_mask, attention_reference
from fastllm.kernels.checks import normalize_window
from fastllm.kernels.configs import AttnConfig
from fastllm.kernels.padding import PaddedRows, padded_rows

from tests.support.kernel_checks import TOL, assert_close, randn

pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
NO_SHRINK = [Phase.explicit, Phase.generate]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def unpadded_reference(q, k, v, rows, scale, offsets, softcap):
    """Each row's problem on its own slices (float64), padding queries zero; differentiable."""
    outs = []
    for b, (ks, ke, qe) in enumerate(zip(*(t.tolist() for t in rows))):
        out = q[b] * 0.0 + (k[b].sum() + v[b].sum()) * 0.0  # every input in the graph: zero gradients
        if qe > 0 and ke > ks:
            row, _ = attention_reference(q[b : b + 1, :, :qe], k[b : b + 1, :, ks:ke], v[b : b + 1, :, ks:ke],
                                         scale, offsets, softcap)
            out = torch.cat([row[0], torch.zeros_like(q[b, :, qe:])], dim=1)
        outs.append(out)
    return torch.stack(outs)


def row_lists(draw, batch, nq, nk):
    ke = [draw(st.integers(0, nk)) for _ in range(batch)]
    ks = [draw(st.integers(0, e)) for e in ke]
    qe = [draw(st.integers(0, nq)) for _ in range(batch)]
    return ks, ke, qe


@st.composite
def padded_problems(draw):
    batch = draw(st.integers(1, 3))
    nq, nk = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    return batch, nq, nk, row_lists(draw, batch, nq, nk)


def check_padded(batch, h, hk, nq, nk, d, dtype, causal, window, softcap, rows, seed, config=None):
    q = randn((batch, h, nq, d), dtype, seed).requires_grad_()
    k = randn((batch, hk, nk, d), dtype, seed + 1).requires_grad_()
    v = randn((batch, hk, nk, d), dtype, seed + 2).requires_grad_()
    ks, ke, qe = (torch.tensor(r) for r in rows)
    out, lse = flash_attention(q, k, v, causal=causal, window=window, softcap=softcap, return_lse=True,
                               key_start=ks, key_end=ke, query_end=qe, config=config)
    dout = randn(out.shape, dtype, seed + 3)
    out.backward(dout)

    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    offsets = normalize_window(window, causal)
    ref = unpadded_reference(q64, k64, v64, (ks, ke, qe), d**-0.5, offsets, softcap or 0.0)
    ref.backward(dout.double())
    _, ref_lse = attention_reference(q64, k64, v64, d**-0.5, offsets, softcap or 0.0, (ks, ke, qe))
    tol, gtol = TOL[dtype]
    assert_close(out, ref, tol, "out")
    assert_close(lse, ref_lse, 1e-4, "lse")
    assert_close(q.grad, q64.grad, gtol, "dq")
    assert_close(k.grad, k64.grad, gtol, "dk")
    assert_close(v.grad, v64.grad, gtol, "dv")
    for b, e in enumerate(qe.tolist()):  # padding queries: zero output and gradient
        assert not out[b, :, e:].any() and not q.grad[b, :, e:].any()


@settings(deadline=None, max_examples=16, derandomize=True, phases=NO_SHRINK)
@given(
    problem=padded_problems(),
    hk=st.integers(1, 2),
    group=st.sampled_from([1, 3]),
    d=st.sampled_from([16, 40, 64]),
    dtype=st.sampled_from(DTYPES),
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(0, 30), st.tuples(st.integers(-1, 20), st.integers(-1, 20))),
    softcap=st.one_of(st.none(), st.floats(2.0, 30.0)),
    tiles=st.sampled_from([None, AttnConfig(16, 16, 4, 1), AttnConfig(32, 16, 4, 1), AttnConfig(16, 32, 4, 1)]),
    seed=st.integers(0, 2**16),
)
def test_padded_batch_is_each_row_unpadded(problem, hk, group, d, dtype, causal, window, softcap, tiles, seed):
    """Forward, LSE and all three gradients; small tiles put row boundaries inside, across
    and at the ends of KV and query tiles."""
    batch, nq, nk, rows = problem
    check_padded(batch, hk * group, hk, nq, nk, d, dtype, causal, window, softcap, rows, seed, tiles)


@pytest.mark.parametrize("causal,window", [(True, None), (True, 9), (False, (4, -1))])
def test_left_right_and_ragged_rows(causal, window):
    """The three shapes a model meets, 16x16 tiles: left padding (key_start), right padding
    (key_end and query_end), and one query over a cache filled to different lengths."""
    n, tiles = 37, AttnConfig(16, 16, 4, 1)
    left = ([0, 17, 36], [n] * 3, [n] * 3)
    right = ([0] * 3, [n, 30, 1], [n, 30, 1])
    ragged = ([0, 0, 3], [n, 12, 20], [1, 1, 1])
    check_padded(3, 2, 1, n, n, 16, torch.float32, causal, window, None, left, seed=1, config=tiles)
    check_padded(3, 2, 1, n, n, 16, torch.float32, causal, window, None, right, seed=2, config=tiles)
    check_padded(3, 2, 1, 1, n, 16, torch.float32, causal, window, None, ragged, seed=3, config=tiles)


@settings(deadline=None, max_examples=10, derandomize=True, phases=NO_SHRINK)
@given(
    data=st.data(),
    batch=st.integers(1, 3),
    hk=st.integers(1, 2),
    group=st.sampled_from([1, 4]),
    nq=st.integers(1, 4),
    nk=st.integers(1, 260),
    dtype=st.sampled_from(DTYPES),
    causal=st.booleans(),
    window=st.one_of(st.none(), st.integers(0, 90)),
    softcap=st.one_of(st.none(), st.floats(2.0, 30.0)),
    num_splits=st.one_of(st.none(), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
)
def test_decode_over_ragged_cache(data, batch, hk, group, nq, nk, dtype, causal, window, softcap, num_splits, seed):
    """The split-KV kernel: splits wholly inside padding, rows ending mid-split, empty rows."""
    rows = row_lists(data.draw, batch, nq, nk)
    h, d = hk * group, 32
    q, k, v = (randn(s, dtype, seed + i) for i, s in enumerate([(batch, h, nq, d), (batch, hk, nk, d), (batch, hk, nk, d)]))
    ks, ke, qe = (torch.tensor(r) for r in rows)
    out, lse = flash_decode(q, k, v, causal=causal, window=window, softcap=softcap, return_lse=True,
                            key_start=ks, key_end=ke, query_end=qe, num_splits=num_splits)
    offsets = normalize_window(window, causal)
    ref = unpadded_reference(q.double(), k.double(), v.double(), (ks, ke, qe), d**-0.5, offsets, softcap or 0.0)
    _, ref_lse = attention_reference(q.double(), k.double(), v.double(), d**-0.5, offsets, softcap or 0.0, (ks, ke, qe))
    assert_close(out, ref, TOL[dtype][0], "decode out")
    assert_close(lse, ref_lse, 1e-4, "decode lse")


def test_flash_attention_takes_the_decode_kernel_with_rows(monkeypatch):
    import fastllm.kernels.attention_decode as dec

    calls = []
    real = dec.decode_forward
    monkeypatch.setattr(dec, "decode_forward", lambda *a, **kw: calls.append(kw["rows"]) or real(*a, **kw))
    q, k, v = (randn(s, torch.float32, i) for i, s in enumerate([(2, 4, 1, 32), (2, 1, 600, 32), (2, 1, 600, 32)]))
    out = flash_attention(q, k, v, causal=True, key_end=[600, 333])
    assert len(calls) == 1 and calls[0][1].tolist() == [600, 333]
    rows = (torch.tensor([0, 0]), torch.tensor([600, 333]), torch.tensor([1, 1]))
    assert_close(out, unpadded_reference(q.double(), k.double(), v.double(), rows, 32**-0.5, (None, 0), 0.0), 1e-4, "out")


def test_reference_backend_agrees_with_triton():
    q, k, v = (randn(s, torch.float16, i).requires_grad_() for i, s in enumerate([(2, 4, 21, 32), (2, 2, 33, 32), (2, 2, 33, 32)]))
    rows = dict(key_start=[3, 0], key_end=[33, 20], query_end=[21, 9])
    fast = flash_attention(q, k, v, causal=True, softcap=6.0, **rows)
    with force_backend("reference"):
        slow = flash_attention(q, k, v, causal=True, softcap=6.0, **rows)
    assert_close(fast, slow, TOL[torch.float16][0], "triton vs reference backend")


def test_attention_mask_with_rows_is_the_kernels_mask():
    """attention_mask(..., key_start=, key_end=, query_end=) is (batch, 1, q, k) and, as an SDPA
    mask, reproduces the kernels on every query that sees a key."""
    q, k, v = (randn(s, torch.float64, i) for i, s in enumerate([(2, 2, 9, 16), (2, 2, 14, 16), (2, 2, 14, 16)]))
    rows = dict(key_start=torch.tensor([2, 0]), key_end=torch.tensor([14, 8]), query_end=torch.tensor([9, 5]))
    mask = attention_mask(9, 14, True, **rows)
    assert mask.shape == (2, 1, 9, 14)
    # row 1: queries 0..4 sit at key positions 3..7, keys [0, 8)
    assert torch.equal(mask[1, 0, :5], torch.ones(5, 14, dtype=torch.bool).tril(3) & (torch.arange(14) < 8))
    assert not mask[1, 0, 5:].any()
    seen = mask.any(-1, keepdim=True)
    expect = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~seen) * seen
    with force_backend("reference"):
        got = flash_attention(q.float(), k.float(), v.float(), causal=True, **rows)
    assert_close(got, expect, 1e-5, "mask")


# ---------------------------------------------------------------- padding masks -> rows


def test_padded_rows_of_left_and_right_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    rows = padded_rows(mask, 5)
    assert isinstance(rows, PaddedRows) and all(t.dtype == torch.int32 for t in rows)
    assert rows.key_start.tolist() == [2, 0, 0, 0]
    assert rows.key_end.tolist() == [5, 5, 2, 0]
    assert rows.query_end.tolist() == [5, 5, 2, 0]
    # with a cache: three new queries after two cached positions (decode of left-padded prompts)
    assert padded_rows(mask, 3).query_end.tolist() == [3, 3, 0, 0]
    # not causal and no window: every query counts, keys are masked
    assert padded_rows(mask, 5, causal=False).query_end.tolist() == [5] * 4


def test_padded_rows_reproduce_the_masked_attention():
    """flash_attention(**padded_rows(key_mask)) equals SDPA with causal & key_mask on every
    query that sees a key, for left, right and mixed padding."""
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    q, k, v = (randn(s, torch.float64, 10 + i) for i, s in enumerate([(3, 2, 7, 16), (3, 2, 7, 16), (3, 2, 7, 16)]))
    for causal, window in [(True, None), (True, 2), (False, None)]:
        dense = attention_mask(7, 7, causal, window)[None, None] & mask[:, None, None, :]
        seen = dense.any(-1, keepdim=True)
        expect = F.scaled_dot_product_attention(q, k, v, attn_mask=dense | ~seen)
        rows = padded_rows(mask, 7, causal=causal, window=window)
        got = flash_attention(q.float(), k.float(), v.float(), causal=causal, window=window, **rows._asdict())
        real = seen & (mask[:, None, :, None] if causal else True)  # padding queries of right padding are zero
        assert_close(got * real, expect * real, 1e-5, f"causal={causal} window={window}")


def test_padded_rows_refuses_what_rows_cannot_say():
    holes = torch.tensor([[1, 0, 1, 1]], dtype=torch.bool)
    assert padded_rows(holes, 4) is None
    # a right-padded row continued by one query at position 4: its keys 0..1 all lie before
    # the query, which rows (aligned on the row's last key) cannot express
    continued = torch.tensor([[1, 1, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert padded_rows(continued, 1) is None
    assert padded_rows(torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool), 1) is None
    # ... unless no query position matters
    assert padded_rows(torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool), 1, causal=False) is not None
    with pytest.raises(ValueError, match="batch, kv_len"):
        padded_rows(torch.ones(4, dtype=torch.bool), 4)


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    "rows,exc,match",
    [
        (dict(key_end=torch.tensor([5.0, 3.0])), TypeError, "key_end must hold integers"),
        (dict(key_start=torch.tensor([0, 1, 2])), ValueError, r"key_start must have shape \(2,\)"),
        (dict(query_end="3"), TypeError, "query_end must be a 1-D integer tensor"),
        (dict(key_end=[5, 9]), ValueError, r"key_end\[1\] = 9 is outside \[0, kv_len=8\]"),
        (dict(key_start=[4, 0], key_end=[3, 8]), ValueError, r"key_start\[0\] = 4 is outside \[0, key_end\]"),
        (dict(query_end=[-1, 2]), ValueError, r"query_end\[0\] = -1"),
        (dict(key_start=[0.5, 1]), TypeError, "list of ints"),
    ],
)
def test_bad_rows_raise(rows, exc, match):
    q = torch.randn(2, 2, 6, 16)
    k = torch.randn(2, 2, 8, 16)
    with pytest.raises(exc, match=match):
        flash_attention(q, k, k, causal=True, **rows)
    with pytest.raises(exc, match=match):
        flash_decode(q, k, k, causal=True, **rows)


def test_unchecked_rows_are_clamped():
    """check_rows=False skips the synchronisation; out-of-range values are clamped by the
    kernels (and the reference) instead of reading outside the tensors."""
    q, k, v = (randn(s, torch.float32, i) for i, s in enumerate([(2, 2, 6, 16), (2, 2, 8, 16), (2, 2, 8, 16)]))
    bad = dict(key_start=[-3, 5], key_end=[99, 4], query_end=[6, 50], check_rows=False)
    clamped = dict(key_start=[0, 4], key_end=[8, 4], query_end=[6, 6])
    for backend in ("triton", "reference"):
        with force_backend(backend):
            assert_close(flash_attention(q, k, v, causal=True, **bad), flash_attention(q, k, v, causal=True, **clamped),
                         1e-6, backend)
