"""Padding masks as the attention kernels' padded-batch rows.

A boolean key mask ``(batch, kv_len)`` (True = real token) whose True entries form one run per
row - left padding, right padding, a KV cache filled to a different length per row - is
described exactly by per-row key ranges and query ends, which :func:`flash_attention` takes
instead of a mask (``flash_attention(q, k, v, causal=True, **rows._asdict())``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch

from .checks import Window, normalize_window


class PaddedRows(NamedTuple):
    """``key_start``, ``key_end``, ``query_end``: int32 ``(batch,)`` tensors, the padded-batch
    arguments of :func:`fastllm.kernels.flash_attention` (see there)."""

    key_start: torch.Tensor
    key_end: torch.Tensor
    query_end: torch.Tensor


def padded_rows(
    key_mask: torch.Tensor,
    q_len: int,
    causal: bool = True,
    window: Window = None,
    diag: Union[None, int, torch.Tensor] = None,
) -> Optional[PaddedRows]:
    """The rows that make the kernels compute ``mask & key_mask`` exactly, where ``mask`` is the
    causal/window mask of queries sitting at key positions ``i + diag`` (default ``kv_len -
    q_len``: the queries are the last ``q_len`` positions, as with a KV cache).

    Returns ``None`` when that is impossible: a row whose True entries are not one run, or a
    row whose real keys all lie before its first query when the positions matter (a
    right-padded row continued with a cache). Padding queries (past a row's last real key, or
    seeing no key at all) output zeros from the kernels. One device synchronisation.
    """
    if key_mask.dim() != 2:
        raise ValueError(f"key_mask must be (batch, kv_len), got shape {tuple(key_mask.shape)}")
    mask = key_mask.bool()
    kv_len = mask.shape[1]
    if diag is None:
        diag = kv_len - q_len
    left, right = normalize_window(window, causal)
    idx = torch.arange(kv_len, device=mask.device)
    count = mask.sum(-1)
    start = torch.where(mask, idx, kv_len).amin(-1).clamp(max=kv_len)
    end = torch.where(mask, idx + 1, 0).amax(-1)
    empty = count == 0
    start = torch.where(empty, 0, start)
    end = torch.where(empty, 0, end)
    ok = (end - start) == count  # one run of True per row
    if left is None and right is None:
        query_end = torch.full_like(end, q_len)  # the queries' positions do not matter
    else:
        if right is not None:  # keys after the last query's window are seen by nobody
            last = torch.as_tensor(diag + q_len + right, device=end.device)
            end = torch.maximum(torch.minimum(end, last), start)
            empty = empty | (end == start)
        query_end = end - diag
        ok &= empty | ((query_end >= 0) & (query_end <= q_len))
        query_end = torch.where(empty, 0, query_end.clamp(0, q_len))
    if not bool(ok.all()):
        return None
    return PaddedRows(*(t.to(torch.int32) for t in (start, end, query_end)))
