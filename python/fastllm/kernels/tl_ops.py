"""Small ``@triton.jit`` building blocks shared by the kernels (inlined at compile time)."""

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def dot(a, b, UPCAST: tl.constexpr, IEEE: tl.constexpr):
    """``a @ b`` with fp32 accumulation.

    ``UPCAST``: compute on fp32 copies of the operands. Used for bf16 under Triton's
    interpreter, whose bf16 ``tl.dot`` is wrong; rounding of the operands to bf16 has
    already happened, so this matches a bf16 MMA with fp32 accumulation.
    ``IEEE``: full fp32 precision for fp32 operands (the GPU default would be TF32).
    """
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    elif IEEE:
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b)


@triton.jit
def tanh(x):
    """tanh from ``exp`` (libdevice is not available in the interpreter); saturates cleanly."""
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


@triton.jit
def score_scale(scale, softcap, HAS_SOFTCAP: tl.constexpr):
    """Factor on ``q @ k^T`` before the softmax in base 2: ``scale / softcap`` ahead of the
    soft-cap's tanh (which then multiplies by ``softcap * log2(e)``), else ``scale * log2(e)``."""
    if HAS_SOFTCAP:
        return scale / softcap
    else:
        return scale * LOG2E


@triton.jit
def window_mask(valid, q_pos, k_pos, diag, left, right, HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr):
    """``valid`` and "query ``q_pos`` sees key ``k_pos``" (positions broadcast against each
    other): ``q_pos + diag - left <= k_pos <= q_pos + diag + right``, ``diag = NK - NQ``."""
    if HAS_RIGHT:
        valid = valid & (k_pos <= q_pos + diag + right)
    if HAS_LEFT:
        valid = valid & (k_pos >= q_pos + diag - left)
    return valid


@triton.jit
def key_range(m0, diag, NK, left, right, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              HAS_LEFT: tl.constexpr, HAS_RIGHT: tl.constexpr):
    """``[lo, hi)``: the keys some query of the tile starting at query ``m0`` may see, ``lo``
    on a ``BLOCK_N`` boundary."""
    lo = 0
    hi = NK
    if HAS_LEFT:
        lo = tl.maximum(m0 + diag - left, 0)
        lo = (lo // BLOCK_N) * BLOCK_N
    if HAS_RIGHT:
        hi = tl.minimum(m0 + BLOCK_M + diag + right, NK)
    return lo, hi


@triton.jit
def row_ranges(KSTART, KEND, QEND, b, NQ, NK, VARLEN: tl.constexpr):
    """``(k_lo, k_hi, q_hi, diag)`` of batch row ``b``: its keys ``[k_lo, k_hi)``, its queries
    ``[0, q_hi)`` and the key position of query 0, ``diag = k_hi - q_hi`` (the row's last query
    sits on its last key). Without ``VARLEN`` every key and query is valid. Loaded values are
    clamped into range, so that a bad one never addresses memory outside the tensors."""
    if VARLEN:
        k_hi = tl.minimum(tl.maximum(tl.load(KEND + b), 0), NK)
        k_lo = tl.minimum(tl.maximum(tl.load(KSTART + b), 0), k_hi)
        q_hi = tl.minimum(tl.maximum(tl.load(QEND + b), 0), NQ)
    else:
        k_lo = 0
        k_hi = NK
        q_hi = NQ
    return k_lo, k_hi, q_hi, k_hi - q_hi
