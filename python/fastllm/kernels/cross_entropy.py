"""``cross_entropy``: the public function, its dispatch, autograd Function, launchers and Triton kernels.

``ce_fwd_kernel``: one program per row, an online log-sum-exp over vocab tiles; writes the
per-row loss and log-sum-exp. ``ce_bwd_kernel``: one program per (row, vocab tile); writes
``dloss * d loss / d logits`` and may write it over the logits themselves (each element is
read before the same program overwrites it). All math in fp32.

Per-row loss with soft-cap ``z = c * tanh(x / c)`` (or ``z = x``), smoothing ``eps``::

    loss = lse(z) - (1 - eps) * z[target] - eps / V * sum(z) + z_loss * lse(z)**2

The kernels are plain functions here and become ``@triton.jit`` kernels in
:func:`triton_kernels` at the first launch, so importing this module does not import Triton.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Dict, Optional

import torch

from . import checks, configs
from .cross_entropy_reference import cross_entropy_reference
from .dispatch import interpreting, select_backend
from .loss_reduction import reduce_loss, reduce_loss_backward

if TYPE_CHECKING:  # bound as globals of this module by triton_kernels()
    import triton.language as tl

    from .tl_ops import tanh


def ce_fwd_kernel(
    LOGITS, TARGET, LOSS, LSE,
    stride_row, V, ignore_index,
    smoothing, z_loss, softcap,
    BLOCK_V: tl.constexpr, VEC: tl.constexpr, HAS_SOFTCAP: tl.constexpr, HAS_SMOOTHING: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = LOGITS + row * stride_row
    target = tl.load(TARGET + row).to(tl.int64)
    cols = tl.arange(0, BLOCK_V)
    # Tiles start at the VEC-element boundary at or before the row's start and span a whole
    # number of VEC-element groups, so loads are 16 bytes wide however wide the vocabulary
    # (50257 is odd); the elements outside the row are read (same 16 bytes) and left out.
    lead = (row * stride_row) % VEC
    first = LOGITS + tl.multiple_of(row * stride_row - lead, VEC)
    span = tl.multiple_of((lead + V + VEC - 1) // VEC * VEC, VEC)

    m = -float("inf")
    s = 0.0
    zsum = 0.0
    for start in range(0, span, BLOCK_V):
        pos = start + cols
        idx = pos - lead
        ok = (idx >= 0) & (idx < V)
        z = tl.load(first + pos, mask=pos < span, other=0.0).to(tl.float32)
        if HAS_SOFTCAP:
            z = softcap * tanh(z / softcap)
        if HAS_SMOOTHING:
            zsum += tl.sum(tl.where(ok, z, 0.0), 0)
        z = tl.where(ok, z, -float("inf"))
        m_new = tl.maximum(m, tl.max(z, 0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new), 0)
        m = m_new
    lse = m + tl.log(s)

    ignored = target == ignore_index
    # A target outside the vocabulary (possible with check_target=False) is never read: its
    # row's loss is NaN, and so is its gradient in the backward.
    bad = ((target < 0) | (target >= V)) & (target != ignore_index)
    safe_t = tl.where(ignored | bad, 0, target)
    zt = tl.load(base + safe_t).to(tl.float32)
    if HAS_SOFTCAP:
        zt = softcap * tanh(zt / softcap)
    loss = lse - (1.0 - smoothing) * zt
    if HAS_SMOOTHING:
        loss -= smoothing * zsum / V
    loss += z_loss * lse * lse
    loss = tl.where(bad, float("nan"), loss)
    tl.store(LOSS + row, tl.where(ignored, 0.0, loss))
    tl.store(LSE + row, lse)


def ce_bwd_kernel(
    LOGITS, GRAD, TARGET, LSE, DLOSS,
    stride_row, stride_grad, stride_dloss, V, ignore_index,
    smoothing, z_loss, softcap,
    BLOCK_V: tl.constexpr, VEC: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    # Loads as in the forward, from the VEC boundary before the row's start; the stores
    # write the row's own elements only, at the gradient's stride.
    lead = (row * stride_row) % VEC
    first = LOGITS + tl.multiple_of(row * stride_row - lead, VEC)
    span = tl.multiple_of((lead + V + VEC - 1) // VEC * VEC, VEC)
    pos = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    idx = pos - lead
    ok = (idx >= 0) & (idx < V)
    target = tl.load(TARGET + row).to(tl.int64)
    lse = tl.load(LSE + row)
    dloss = tl.load(DLOSS + row * stride_dloss).to(tl.float32)
    dloss = tl.where(target == ignore_index, 0.0, dloss)
    bad = ((target < 0) | (target >= V)) & (target != ignore_index)  # as in the forward
    dloss = tl.where(bad, float("nan"), dloss)

    x = tl.load(first + pos, mask=pos < span, other=0.0).to(tl.float32)
    if HAS_SOFTCAP:
        t = tanh(x / softcap)
        z = softcap * t
    else:
        z = x
    p = tl.exp(z - lse)
    g = p * (1.0 + 2.0 * z_loss * lse) - smoothing / V
    g = tl.where(idx == target, g - (1.0 - smoothing), g)
    if HAS_SOFTCAP:
        g = g * (1.0 - t * t)
    # One element per store: 16-byte stores of the whole groups inside the row (plus the
    # row's ends one by one) made the kernel 1.46x slower on an H200 (2026-12-04, vocab 50257).
    tl.store(GRAD + row * stride_grad + idx, (g * dloss).to(GRAD.dtype.element_ty), mask=ok)


@functools.lru_cache(maxsize=None)
def triton_kernels() -> Dict[str, object]:
    """``{name: @triton.jit kernel}``; imports Triton (and reads ``TRITON_INTERPRET``)."""
    import triton
    import triton.language

    from .tl_ops import tanh as tl_tanh

    globals().update(tl=triton.language, tanh=tl_tanh)  # what the kernel bodies look up
    return {fn.__name__: triton.jit(fn) for fn in (ce_fwd_kernel, ce_bwd_kernel)}


def load_width(logits: torch.Tensor, vec: Optional[int] = None) -> int:
    """The kernels' ``VEC``: elements per 16-byte load where the rows are not already on
    16-byte boundaries (an odd vocabulary such as GPT-2's 50257), else 1. 1 also where the
    logits' first element is not 16-byte aligned, and under the interpreter, where reading
    a few elements beyond the tensor (as the GPU kernels do within 16 bytes of a row) would
    read past a CPU buffer. Rows already aligned keep 1: Triton then knows the stride and
    width are multiples of 16 and widens loads and stores itself. ``vec`` overrides it
    (tests, with guard elements around the logits)."""
    if vec is not None:
        return vec
    width = 16 // logits.element_size()
    n, v = logits.shape
    aligned = (n <= 1 or logits.stride(0) % width == 0) and v % width == 0
    if aligned or interpreting() or logits.data_ptr() % 16:
        return 1
    return width


def ce_forward(logits, target, ignore_index, smoothing, z_loss, softcap, block_v=None, vec=None):
    """Per-row ``(loss, lse)`` in fp32 for 2-D ``logits`` with unit stride along the vocab."""
    n, v = logits.shape
    kernel = triton_kernels()["ce_fwd_kernel"]
    cfg = configs.ce_config("ce_fwd_kernel", block_v)
    loss = torch.empty(n, dtype=torch.float32, device=logits.device)
    lse = torch.empty(n, dtype=torch.float32, device=logits.device)
    if n == 0:
        return loss, lse
    kernel[(n,)](
        logits, target, loss, lse, logits.stride(0), v, ignore_index,
        float(smoothing), float(z_loss), softcap if softcap > 0 else 1.0,
        BLOCK_V=min(cfg.block_v, configs.next_power_of_2(v)), VEC=load_width(logits, vec), HAS_SOFTCAP=softcap > 0,
        HAS_SMOOTHING=smoothing > 0, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return loss, lse


def ce_backward(logits, target, lse, dloss, ignore_index, smoothing, z_loss, softcap, out=None, block_v=None, vec=None):
    """Gradient w.r.t. ``logits`` scaled by ``dloss`` (a per-row vector, or a 0-d/1-element
    tensor broadcast to every row). ``out`` may be ``logits`` itself (in-place)."""
    n, v = logits.shape
    kernel = triton_kernels()["ce_bwd_kernel"]
    cfg = configs.ce_config("ce_bwd_kernel", block_v)
    grad = torch.empty_like(logits) if out is None else out
    if n == 0:
        return grad
    dloss = dloss.reshape(-1)
    stride_dloss = 0 if dloss.numel() == 1 else dloss.stride(0)
    block = min(cfg.block_v, configs.next_power_of_2(v))
    width = load_width(logits, vec)
    kernel[(n, configs.cdiv(v + width - 1, block))](
        logits, grad, target, lse, dloss, logits.stride(0), grad.stride(0), stride_dloss, v, ignore_index,
        float(smoothing), float(z_loss), softcap if softcap > 0 else 1.0,
        BLOCK_V=block, VEC=width, HAS_SOFTCAP=softcap > 0, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return grad


class CrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, ignore_index, reduction, smoothing, z_loss, softcap, inplace_backward, block_v):
        loss, lse = ce_forward(logits, target, ignore_index, smoothing, z_loss, softcap, block_v)
        ctx.save_for_backward(logits, target, lse)
        ctx.params = (ignore_index, reduction, smoothing, z_loss, softcap, inplace_backward, block_v)
        return reduce_loss(loss, target, ignore_index, reduction)

    @staticmethod
    def backward(ctx, grad_output):
        logits, target, lse = ctx.saved_tensors
        ignore_index, reduction, smoothing, z_loss, softcap, inplace, block_v = ctx.params
        dloss = reduce_loss_backward(grad_output, target, ignore_index, reduction)
        out = logits if inplace else None
        grad = ce_backward(logits, target, lse, dloss, ignore_index, smoothing, z_loss, softcap, out=out, block_v=block_v)
        if inplace:
            # the logits now hold their gradient: make any other autograd use of them fail loudly
            torch.autograd.graph.increment_version(logits)
        return grad, None, None, None, None, None, None, None, None


@torch.compiler.disable
def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    *,
    inplace_backward: bool = False,
    check_target: bool = True,
    block_v: Optional[int] = None,
) -> torch.Tensor:
    """Cross-entropy over ``(tokens, vocab)`` logits, equal to
    ``torch.nn.functional.cross_entropy`` plus optional z-loss and soft-capping.

    Per row: ``loss = lse(z) - (1 - eps) z[target] - eps * mean(z) + z_loss * lse(z)**2`` with
    ``z = softcap * tanh(logits / softcap)`` (or ``z = logits``) and ``eps = label_smoothing``;
    rows whose target is ``ignore_index`` contribute 0 and are excluded from the mean.
    The math runs in fp32 for every input dtype and the loss is returned in **float32**.

    ``inplace_backward=True`` writes the gradient over the logits' storage, so the backward
    needs no second logits-sized buffer. Use it only when nothing reads those logits after
    the backward (typical for ``cross_entropy(lm_head(h).view(-1, V), t)``); the logits'
    version counter is bumped, so another autograd use of them raises instead of silently
    reading gradients. ``check_target=False`` skips the target-range check, which waits for
    the GPU (a host synchronisation each call, which costs most where the loss is a small part
    of the step); a target outside ``[0, vocab)`` that is not ``ignore_index`` then gives a
    NaN loss and NaN gradient in its row on the GPU (never an out-of-bounds read).
    """
    cap = checks.check_cross_entropy(logits, target, ignore_index, reduction, label_smoothing, z_loss, softcap, check_target)
    if block_v is not None and (block_v < 16 or block_v & (block_v - 1)):
        raise ValueError(f"block_v must be a power of two >= 16, got {block_v}")
    if select_backend(logits) == "reference":
        loss = cross_entropy_reference(logits, target, ignore_index, reduction, label_smoothing, z_loss, cap)
        return loss.float()
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    return CrossEntropyFunction.apply(
        logits, target.contiguous(), ignore_index, reduction, float(label_smoothing), float(z_loss), cap,
        bool(inplace_backward), block_v,
    )
