"""``linear_cross_entropy``: LM head + cross-entropy without materialising all the logits.

Tokens are processed in chunks: ``logits_c = hidden_c @ weight.T (+ bias)``, then the Triton
loss kernel of :mod:`fastllm.kernels.cross_entropy`, then its gradient kernel overwriting
``logits_c`` in place, then the chunk's contributions to the hidden, weight and bias
gradients. Only one chunk of logits exists at any time. The gradients are computed during
the forward (the backward only scales them by the incoming scalar gradient), so the matmul
count equals unfused ``Linear`` + loss; with ``reduction="none"`` the per-row incoming
gradient is unknown in the forward, so the backward recomputes the chunks instead.

The weight (and bias) gradient is accumulated in float32 across chunks by default
(``accum_dtype``): accumulating bf16 partial sums across many chunks is the classic
precision bug of fused losses.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import checks, configs
from .cross_entropy import ce_backward, ce_forward
from .cross_entropy_reference import cross_entropy_reference
from .dispatch import select_backend
from .loss_reduction import reduce_loss, reduce_loss_backward

_OUT_DTYPE_MM: dict = {}


def accumulate_mm(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``acc += a @ b`` for half-precision ``a, b`` and a float32 ``acc``.

    On CUDA uses cuBLAS with fp32 output (``addmm(..., out_dtype=float32)``) when this torch
    has it, so no rounding to half precision happens at all; otherwise the product is rounded
    once per chunk and summed in fp32.
    """
    if acc.dtype == a.dtype:
        acc.addmm_(a, b)
        return
    key = (a.device.type, a.dtype)
    if a.device.type == "cuda" and _OUT_DTYPE_MM.get(key, True):
        try:
            torch.addmm(acc, a, b, out_dtype=acc.dtype, out=acc)
            _OUT_DTYPE_MM[key] = True
            return
        except (RuntimeError, TypeError):
            _OUT_DTYPE_MM[key] = False
    acc.add_(torch.mm(a, b))


def default_chunk_size(n: int, hidden: int, vocab: int) -> int:
    """Rows per chunk so a chunk of logits is about four times the size of ``hidden`` (at
    least 256 rows). On an H200 (2026-12-04, 16384 tokens, vocab 128256, bf16) that is 2048
    rows at hidden 2048 and 4096: 44.3 / 88.7 ms against 56.7 / 113.5 for a chunk the size of
    ``hidden`` (512 rows; its matmuls are too small) and torch's 45.5 / 88.2, at 2.0 / 3.2 GiB
    against torch's 11.7."""
    rows = configs.next_power_of_2(configs.cdiv(4 * n, configs.cdiv(vocab, hidden)))
    return max(1, min(n, max(256, rows)))


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _run(hidden, weight, bias, target, dloss, opts, grads):
    """One pass over the chunks. Returns per-row losses; fills ``grads`` (dict of buffers)
    when ``dloss`` is given (scalar-like or per row)."""
    ignore_index, smoothing, z_loss, cap, chunk, block_v, compute = opts
    n = hidden.shape[0]
    # The matmuls run in ``compute`` (hidden's dtype, or autocast's: e.g. fp32 master weights
    # with bf16 activations); autocast is off inside so that it cannot change a product's dtype
    # under the gradient buffers.
    weight = weight.to(compute)
    bias = None if bias is None else bias.to(compute)
    losses = torch.empty(n, dtype=torch.float32, device=hidden.device)
    with torch.autocast(hidden.device.type, enabled=False):
        for s, e in _chunks(n, chunk):
            h_c, t_c = hidden[s:e].to(compute), target[s:e]
            logits = F.linear(h_c, weight, bias)
            loss_c, lse_c = ce_forward(logits, t_c, ignore_index, smoothing, z_loss, cap, block_v)
            losses[s:e] = loss_c
            if dloss is None:
                continue
            d_c = dloss if dloss.numel() == 1 else dloss[s:e]
            g = ce_backward(logits, t_c, lse_c, d_c, ignore_index, smoothing, z_loss, cap, out=logits, block_v=block_v)
            if grads.get("hidden") is not None:
                if grads["hidden"].dtype == compute:
                    torch.mm(g, weight, out=grads["hidden"][s:e])
                else:
                    grads["hidden"][s:e] = torch.mm(g, weight)
            if grads.get("weight") is not None:
                accumulate_mm(grads["weight"], g.t(), h_c)
            if grads.get("bias") is not None:
                grads["bias"].add_(g.sum(0, dtype=grads["bias"].dtype))
    return losses


def _grad_buffers(hidden, weight, bias, needs, accum_dtype):
    return {
        "hidden": torch.empty_like(hidden) if needs[0] else None,
        "weight": torch.zeros(weight.shape, dtype=accum_dtype, device=weight.device) if needs[1] else None,
        "bias": torch.zeros(bias.shape, dtype=accum_dtype, device=bias.device) if bias is not None and needs[2] else None,
    }


class LinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, reduction, opts, accum_dtype):
        ignore_index = opts[0]
        needs = ctx.needs_input_grad[:3]
        ctx.reduction, ctx.opts, ctx.accum_dtype = reduction, opts, accum_dtype
        grads = None
        if any(needs) and reduction != "none":
            grads = _grad_buffers(hidden, weight, bias, needs, accum_dtype)
            scale = torch.ones((), dtype=torch.float32, device=hidden.device)
            dloss = reduce_loss_backward(scale, target, ignore_index, reduction)
            losses = _run(hidden, weight, bias, target, dloss, opts, grads)
            ctx.save_for_backward(*(grads[k] for k in ("hidden", "weight", "bias")))
        else:
            losses = _run(hidden, weight, bias, target, None, opts, {})
            ctx.save_for_backward(hidden, weight, bias, target)
        ctx.precomputed = grads is not None
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        return reduce_loss(losses, target, ignore_index, reduction)

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.precomputed:
            grads = list(ctx.saved_tensors)
            g = grad_output.float()
        else:
            hidden, weight, bias, target = ctx.saved_tensors
            needs = ctx.needs_input_grad[:3]
            buffers = _grad_buffers(hidden, weight, bias, needs, ctx.accum_dtype)
            dloss = reduce_loss_backward(grad_output, target, ctx.opts[0], ctx.reduction)
            _run(hidden, weight, bias, target, dloss, ctx.opts, buffers)
            grads = [buffers[k] for k in ("hidden", "weight", "bias")]
            g = None
        out = []
        for grad, dtype in zip(grads, ctx.dtypes):
            if grad is None:
                out.append(None)
                continue
            if g is not None:
                grad = grad * g if grad.dtype != torch.float32 else grad.mul_(g)
            out.append(grad.to(dtype))
        return out[0], out[1], out[2], None, None, None, None


@torch.compiler.disable
def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    chunk_size: Optional[int] = None,
    *,
    accum_dtype: Optional[torch.dtype] = torch.float32,
    check_target: bool = True,
    block_v: Optional[int] = None,
) -> torch.Tensor:
    """``cross_entropy(hidden @ weight.T + bias, target, ...)`` without the full logits.

    Args:
        hidden: ``(tokens, hidden_dim)``; weight: ``(vocab, hidden_dim)``; bias: ``(vocab,)``;
            one device. The matmuls run in hidden's dtype, or in autocast's when autocast is
            on; weight and bias may be another float dtype (e.g. fp32 master weights with
            bf16 activations), and every gradient is returned in its input's dtype.
            target: ``(tokens,)``.
        chunk_size: tokens per chunk (default: a chunk of logits about four times the size of
            ``hidden``; see :func:`default_chunk_size`).
        accum_dtype: dtype of the weight/bias gradient accumulator (default float32; ``None``
            accumulates in the weight's dtype).
        Other options as :func:`fastllm.kernels.cross_entropy`. The loss is float32.
    """
    checks.check_tensor("hidden", hidden, 2)
    checks.check_tensor("weight", weight, 2)
    checks.check_float("hidden", hidden)
    checks.check_tensor("target", target, 1)
    checks.check_float("weight", weight)
    if weight.device != hidden.device:
        raise ValueError(f"hidden is on {hidden.device} but weight is on {weight.device}")
    if bias is not None:
        checks.check_tensor("bias", bias, 1)
        checks.check_float("bias", bias)
        checks.check_same(("weight", "bias"), (weight, bias))
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"bias has {bias.shape[0]} entries but weight has {weight.shape[0]} rows (vocab)")
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"hidden has {hidden.shape[1]} features but weight is {tuple(weight.shape)}; expected (vocab, {hidden.shape[1]})"
        )
    n, vocab = hidden.shape[0], weight.shape[0]
    checks.check_targets(n, vocab, target, ignore_index, hidden.device, check_target)
    checks.check_loss_options(reduction, label_smoothing, z_loss)
    cap = checks.check_softcap(softcap)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if accum_dtype is not None and accum_dtype not in (torch.float32, torch.float64, weight.dtype):
        raise TypeError(f"accum_dtype must be float32, float64, the weight dtype or None, got {accum_dtype}")

    if select_backend(hidden) == "reference":
        logits = F.linear(hidden, weight, bias)
        return cross_entropy_reference(logits, target, ignore_index, reduction, label_smoothing, z_loss, cap).float()
    chunk = chunk_size or default_chunk_size(n, hidden.shape[1], vocab)
    # Under autocast the LM head's product runs in autocast's dtype, as an unfused Linear's would.
    device_type = hidden.device.type
    compute = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
    opts = (ignore_index, float(label_smoothing), float(z_loss), cap, chunk, block_v, compute)
    return LinearCrossEntropyFunction.apply(
        hidden, weight, bias, target.contiguous(), reduction, opts, accum_dtype or weight.dtype
    )
