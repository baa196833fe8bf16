"""Split-KV decode attention (Triton): a few queries against a long KV cache.

Each program takes one slice of the KV length for one KV head and processes every query
row of that head's GQA group at once (rows = heads_per_group * q_len, packed), writing a
partial output and its log-sum-exp; a second kernel merges the slices. Padded batches
(``VARLEN``, a KV cache filled to a different length per row) as the forward kernel.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from . import checks, configs
from .attention_fwd import _finish, _fwd_tiles, kernel_flags, padding_rows_to_zero, row_pointers
from .dispatch import interpreting
from .tl_ops import row_ranges, score_scale


@triton.jit
def attn_decode_split_kernel(
    Q, K, V, PO, PLSE, KSTART, KEND, QEND,
    sqb, sqh, sqm, sqd,
    skb, skh, skn, skd,
    svb, svh, svn, svd,
    B, H, GROUP, NQ, NK, SPLIT_LEN,
    scale, softcap, left, right,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr, HAS_SOFTCAP: tl.constexpr, VARLEN: tl.constexpr,
    UPCAST: tl.constexpr, IEEE: tl.constexpr,
):
    # Axis 0 covers (split, row block) pairs, so that axes 1 and 2 (at most 65535 programs
    # each) are the KV head and the batch.
    row_blocks = (GROUP * NQ + BLOCK_M - 1) // BLOCK_M
    pid_s = tl.program_id(0) // row_blocks
    pid_r = tl.program_id(0) % row_blocks
    hk = tl.program_id(1).to(tl.int64)
    b = tl.program_id(2).to(tl.int64)

    rows = pid_r * BLOCK_M + tl.arange(0, BLOCK_M)
    r_ok = rows < GROUP * NQ
    h = hk * GROUP + rows // NQ  # query head of each row
    qi = rows % NQ  # query position of each row
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    q = tl.load(
        Q + b * sqb + h[:, None] * sqh + qi[:, None] * sqm + offs_d[None, :] * sqd,
        mask=r_ok[:, None] & d_ok[None, :], other=0.0,
    )
    k_base = K + b * skb + hk * skh
    v_base = V + b * svb + hk * svh

    k_lo, k_hi, q_hi, diag = row_ranges(KSTART, KEND, QEND, b, NQ, NK, VARLEN)
    lo = pid_s * SPLIT_LEN
    hi = tl.minimum(lo + SPLIT_LEN, k_hi)
    if VARLEN:
        lo = tl.maximum(lo, (k_lo // BLOCK_N) * BLOCK_N)
    if HAS_LEFT:
        lo = tl.maximum(lo, ((diag - left) // BLOCK_N) * BLOCK_N)
    if HAS_RIGHT:
        hi = tl.minimum(hi, q_hi + diag + right)

    qk_scale = score_scale(scale, softcap, HAS_SOFTCAP)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    # The forward's masked tile loop, with each row's own query position. Bounding the
    # columns by k_hi rather than hi changes nothing: a split ends on a tile boundary
    # (SPLIT_LEN is a multiple of BLOCK_N), and columns past q_hi + diag + right are masked.
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, k_base, v_base, qi, offs_n, offs_d, d_ok, lo, hi,
        k_lo, k_hi, skn, skd, svn, svd, diag, left, right, qk_scale, softcap,
        BLOCK_N, HAS_LEFT, HAS_RIGHT, HAS_SOFTCAP, True, VARLEN, UPCAST, IEEE,
    )
    out, lse = _finish(acc, l_i, m_i)
    if VARLEN:
        out, lse = padding_rows_to_zero(out, lse, qi < q_hi)
    # partial buffers: PO (S, B, H, NQ, D) and PLSE (S, B, H, NQ), contiguous
    row = ((pid_s.to(tl.int64) * B + b) * H + h) * NQ + qi
    tl.store(PO + row[:, None] * HEAD_DIM + offs_d[None, :], out, mask=r_ok[:, None] & d_ok[None, :])
    tl.store(PLSE + row, lse, mask=r_ok)


@triton.jit
def attn_decode_combine_kernel(
    PO, PLSE, O, LSE,
    S, ROWS, H, NQ,
    sob, soh, som, sod,
    HEAD_DIM: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # over B * H * NQ
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    s_ok = offs_s < S
    d_ok = offs_d < HEAD_DIM
    lse = tl.load(PLSE + offs_s * ROWS + row, mask=s_ok, other=float("-inf"))
    m = tl.max(lse, 0)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    w = tl.exp(lse - m_safe)
    total = tl.sum(w, 0)
    po = tl.load(
        PO + (offs_s[:, None] * ROWS + row) * HEAD_DIM + offs_d[None, :],
        mask=s_ok[:, None] & d_ok[None, :], other=0.0,
    )
    out = tl.sum(po * w[:, None], 0) / tl.where(total == 0.0, 1.0, total)
    bh = row // NQ
    qi = row % NQ
    b = bh // H
    h = bh % H
    tl.store(O + b * sob + h * soh + qi * som + offs_d * sod, out.to(O.dtype.element_ty), mask=d_ok)
    tl.store(LSE + row, m + tl.log(total))


def default_num_splits(batch_groups: int, nk: int, block_n: int, device: torch.device) -> int:
    if interpreting() or device.type != "cuda":
        target = 4
    else:
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        target = max(1, (2 * sms) // max(batch_groups, 1))
    return max(1, min(target, triton.cdiv(nk, block_n), 128))


def decode_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    window: Tuple[Optional[int], Optional[int]],  # (left, right), None = unbounded
    softcap: float,
    num_splits: Optional[int] = None,
    config: Optional[configs.AttnConfig] = None,
    rows: Optional[checks.Rows] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    b, h, nq, d = q.shape
    hk, nk = k.shape[1], k.shape[2]
    group = h // hk
    q, k, v = checks.triton_attention_inputs(q, k, v)
    cfg = configs.attn_config("attn_decode_split_kernel", d, q.dtype, config)
    block_d = configs.padded_head_dim(d)
    row_blocks = triton.cdiv(group * nq, cfg.block_m)
    splits = num_splits or default_num_splits(b * hk * row_blocks, nk, cfg.block_n, q.device)
    split_len = triton.cdiv(triton.cdiv(nk, splits), cfg.block_n) * cfg.block_n
    splits = triton.cdiv(nk, split_len)
    left, right = window
    upcast, ieee = kernel_flags(q.dtype)

    part_out = torch.empty((splits, b, h, nq, d), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((splits, b, h, nq), dtype=torch.float32, device=q.device)
    attn_decode_split_kernel[(splits * row_blocks, hk, b)](
        q, k, v, part_out, part_lse, *row_pointers(rows, q.device),
        *q.stride(), *k.stride(), *v.stride(),
        b, h, group, nq, nk, split_len,
        scale, softcap if softcap > 0 else 1.0, left or 0, right or 0,
        HEAD_DIM=d, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_D=block_d,
        HAS_LEFT=left is not None, HAS_RIGHT=right is not None, HAS_SOFTCAP=softcap > 0,
        VARLEN=rows is not None, UPCAST=upcast, IEEE=ieee, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    out = torch.empty((b, h, nq, d), dtype=q.dtype, device=q.device)
    lse = torch.empty((b, h, nq), dtype=torch.float32, device=q.device)
    attn_decode_combine_kernel[(b * h * nq,)](
        part_out, part_lse, out, lse, splits, b * h * nq, h, nq, *out.stride(),
        HEAD_DIM=d, BLOCK_S=triton.next_power_of_2(splits), BLOCK_D=block_d, num_warps=4,
    )
    return out, lse
