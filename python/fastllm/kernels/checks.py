"""Argument validation shared by the kernels: every problem is reported before any launch.

Triton kernels do not bounds-check (``tl.device_assert`` is a no-op in the interpreter and
compiled out by default on the GPU), so everything a kernel relies on is checked here.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from .loss_reduction import check_reduction

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MIN_HEAD_DIM = 16
MAX_HEAD_DIM = 256

Window = Union[None, int, Tuple[int, int]]


def check_tensor(name: str, t: object, ndim: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    return t


def check_float(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {t.dtype}; supported: float16, bfloat16, float32")


def check_same(names: Tuple[str, ...], tensors: Tuple[torch.Tensor, ...]) -> None:
    first = tensors[0]
    for name, t in zip(names[1:], tensors[1:]):
        if t.dtype != first.dtype:
            raise TypeError(f"{names[0]} is {first.dtype} but {name} is {t.dtype}; they must match")
        if t.device != first.device:
            raise ValueError(f"{names[0]} is on {first.device} but {name} is on {t.device}")


def normalize_window(window: Window, causal: bool) -> Tuple[Optional[int], Optional[int]]:
    """``window`` -> ``(left, right)`` offsets, ``None`` meaning unbounded (``-1`` in the API).

    An int ``w`` means ``(w, 0)`` when causal and ``(w, w)`` otherwise. Query ``i`` sees key
    ``j`` iff ``i + kv_len - q_len - left <= j <= i + kv_len - q_len + right``.
    """
    if window is None:
        left, right = None, None
    elif isinstance(window, bool):
        raise TypeError("window must be None, an int or a (left, right) tuple, got a bool")
    elif isinstance(window, int):
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        left, right = window, (0 if causal else window)
    elif isinstance(window, (tuple, list)) and len(window) == 2 and all(
        isinstance(w, int) and not isinstance(w, bool) for w in window
    ):
        left, right = int(window[0]), int(window[1])
        if left < -1 or right < -1:
            raise ValueError(f"window entries must be >= -1 (-1 = unbounded), got {tuple(window)}")
    else:
        raise TypeError(f"window must be None, an int or a (left, right) tuple of ints, got {window!r}")
    left = None if left == -1 else left
    right = None if right == -1 else right
    if causal:
        right = 0 if right is None else min(right, 0)
    return left, right


def check_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: Optional[float],
    window: Window,
    softcap: Optional[float],
    causal: bool,
) -> Tuple[float, Tuple[Optional[int], Optional[int]], float]:
    """Validate a flash-attention call; return ``(scale, (left, right), softcap or 0.0)``."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, 4)
        check_float(name, t)
    check_same(("q", "k", "v"), (q, k, v))
    b, h, nq, d = q.shape
    bk, hk, nk, dk = k.shape
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if bk != b:
        raise ValueError(f"q has batch {b} but k/v have batch {bk}")
    if dk != d:
        raise ValueError(f"q has head_dim {d} but k/v have head_dim {dk}")
    if hk == 0 or h % hk != 0:
        raise ValueError(f"q has {h} heads, k/v have {hk}: the k/v head count must divide the query head count")
    if not MIN_HEAD_DIM <= d <= MAX_HEAD_DIM:
        raise ValueError(f"head_dim {d} is not supported: need {MIN_HEAD_DIM} <= head_dim <= {MAX_HEAD_DIM}")
    if nq == 0 or nk == 0 or b == 0 or h == 0:
        raise ValueError(f"empty attention: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if scale is None:
        scale = d ** -0.5
    else:
        scale = float(scale)
        if not scale > 0 or scale != scale or scale == float("inf"):
            raise ValueError(f"scale must be a positive finite number, got {scale}")
    return scale, normalize_window(window, causal), check_softcap(softcap)


# Padded batches: per-row (key_start, key_end, query_end), int32 tensors of shape (batch,).
Rows = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]
_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_rows(
    q: torch.Tensor,
    k: torch.Tensor,
    key_start,
    key_end,
    query_end,
    check_values: bool = True,
) -> Optional[Rows]:
    """Validate the padded-batch arguments of an attention call; return ``None`` when none is
    given, else ``(key_start, key_end, query_end)`` as int32 tensors on q's device, the missing
    ones filled with their defaults (0, kv_len, q_len).

    ``check_values`` also checks ``0 <= key_start <= key_end <= kv_len`` and ``0 <= query_end
    <= q_len`` (one device synchronisation); the kernels clamp to those bounds anyway, so an
    unchecked bad value never reads outside the tensors.
    """
    given = {"key_start": key_start, "key_end": key_end, "query_end": query_end}
    if all(t is None for t in given.values()):
        return None
    b, nq, nk = q.shape[0], q.shape[2], k.shape[2]
    defaults = {"key_start": 0, "key_end": nk, "query_end": nq}
    rows = []
    for name, t in given.items():
        if t is None:
            t = torch.full((b,), defaults[name], dtype=torch.int32, device=q.device)
        else:
            if isinstance(t, (list, tuple)):
                if not all(isinstance(x, int) and not isinstance(x, bool) for x in t):
                    raise TypeError(f"{name} must be a 1-D integer tensor or a list of ints, got {t!r}")
                t = torch.tensor(t, dtype=torch.int32, device=q.device)
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a 1-D integer tensor or a list of ints, got {type(t).__name__}")
            if t.dtype not in _INT_DTYPES:
                raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
            if tuple(t.shape) != (b,):
                raise ValueError(f"{name} must have shape ({b},) (one entry per batch row), got {tuple(t.shape)}")
            if t.device != q.device:
                raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
            t = t.to(torch.int32).contiguous()
        rows.append(t)
    if check_values:
        ks, ke, qe = rows
        problems = {
            "key_start": ((ks < 0) | (ks > ke), "[0, key_end]"),
            "key_end": ((ke < 0) | (ke > nk), f"[0, kv_len={nk}]"),
            "query_end": ((qe < 0) | (qe > nq), f"[0, q_len={nq}]"),
        }
        flags = torch.stack([bad for bad, _ in problems.values()]).any(1).tolist()  # one sync
        for (name, (bad, allowed)), flag, t in zip(problems.items(), flags, rows):
            if flag:
                row = int(bad.nonzero()[0, 0])
                raise ValueError(f"{name}[{row}] = {int(t[row])} is outside {allowed}")
    return tuple(rows)


# CUDA launches at most 65535 programs along grid axes 1 and 2, which the attention kernels
# use for heads and batch.
MAX_GRID_YZ = 65535


def check_attention_grid(batch: int, heads: int) -> None:
    """The Triton attention kernels take batch and heads up to ``MAX_GRID_YZ`` each."""
    if batch > MAX_GRID_YZ or heads > MAX_GRID_YZ:
        raise ValueError(
            f"the Triton attention kernels take at most {MAX_GRID_YZ} batch entries and {MAX_GRID_YZ} heads "
            f"(CUDA grid limit), got batch {batch} and {heads} heads: split the batch"
        )


# The kernels address one (batch, head) slice with int32 offsets (the slice's base is int64).
INT32_MAX = 2**31 - 1


def _slice_extent(t: torch.Tensor) -> int:
    """Largest element offset inside one ``t[b, h]`` slice of a (batch, heads, seq, dim) tensor."""
    return (t.shape[2] - 1) * t.stride(2) + (t.shape[3] - 1) * t.stride(3)


def int32_addressable(name: str, t: torch.Tensor) -> torch.Tensor:
    """``t``, or a contiguous copy when its strides put a (batch, head) slice beyond int32
    offsets (a very long sequence in a (batch, seq, heads, dim) buffer, say). A slice that
    does not fit even contiguous is a ValueError."""
    if _slice_extent(t) <= INT32_MAX:
        return t
    t = t.contiguous()
    if _slice_extent(t) > INT32_MAX:
        raise ValueError(
            f"{name} has {t.shape[2]} x {t.shape[3]} elements per (batch, head): the Triton attention kernels "
            f"address at most 2**31 per head"
        )
    return t


def triton_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    """``(q, k, v)`` as the Triton attention launchers take them: batch and heads within
    the grid, every (batch, head) slice int32-addressable."""
    check_attention_grid(q.shape[0], q.shape[1])
    return tuple(int32_addressable(name, t) for name, t in (("q", q), ("k", k), ("v", v)))


def check_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    softcap: Optional[float],
    check_target: bool = True,
) -> float:
    """Validate a cross-entropy call; return the soft-cap (``0.0`` for none)."""
    check_tensor("logits", logits, 2)
    check_float("logits", logits)
    check_tensor("target", target, 1)
    check_targets(logits.shape[0], logits.shape[1], target, ignore_index, logits.device, check_target)
    check_loss_options(reduction, label_smoothing, z_loss)
    return check_softcap(softcap)


def check_targets(n: int, vocab: int, target: torch.Tensor, ignore_index: int, device, check_values: bool) -> None:
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.shape[0] != n:
        raise ValueError(f"target has {target.shape[0]} entries but there are {n} rows of logits")
    if target.device != device:
        raise ValueError(f"target is on {target.device} but logits are on {device}")
    if vocab == 0:
        raise ValueError("the vocabulary (number of classes) is empty")
    if not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
    if check_values and n > 0:
        bad = (target != ignore_index) & ((target < 0) | (target >= vocab))
        if bool(bad.any()):
            first = int(target[bad][0])
            raise ValueError(
                f"target contains class index {first} outside [0, {vocab}) that is not ignore_index={ignore_index}"
            )


def check_loss_options(reduction: str, label_smoothing: float, z_loss: float) -> None:
    check_reduction(reduction)
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if not float(z_loss) >= 0.0:
        raise ValueError(f"z_loss must be >= 0, got {z_loss}")


def check_softcap(softcap: Optional[float]) -> float:
    if softcap is None:
        return 0.0
    cap = float(softcap)
    if not cap > 0 or cap == float("inf"):
        raise ValueError(f"softcap must be a positive finite number or None, got {softcap}")
    return cap
