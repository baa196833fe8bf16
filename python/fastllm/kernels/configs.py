"""Launch configurations shipped with the kernels.

One table per kernel. The launchers read them and :mod:`fastllm.kernels.aot` compiles every
entry for ``sm_80`` and ``sm_90`` in the test suite, so a configuration that does not compile
(or does not fit in shared memory) fails a test rather than a user's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch


@dataclass(frozen=True)
class AttnConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


# Keyed by padded head dim (power of two, 16..256). Chosen from sm_90 compile statistics
# (no spills, registers <= 255; see ``python -m fastllm.kernels.aot``), not yet tuned on a GPU.
ATTN_FWD: Dict[int, AttnConfig] = {
    16: AttnConfig(128, 64, 8, 3),
    32: AttnConfig(128, 64, 8, 3),
    64: AttnConfig(128, 64, 8, 3),
    128: AttnConfig(128, 64, 8, 2),  # 3 stages spill (sm_80 and sm_90)
    256: AttnConfig(64, 32, 8, 2),
}
# dK/dV: one program per KV tile (block_n) looping over query tiles (block_m).
ATTN_BWD_DKDV: Dict[int, AttnConfig] = {
    16: AttnConfig(32, 128, 8, 2),
    32: AttnConfig(32, 128, 8, 2),
    64: AttnConfig(32, 128, 8, 2),
    128: AttnConfig(32, 128, 8, 2),
    256: AttnConfig(32, 32, 8, 1),  # (16, 64, 8, 1) spilled 328 B on sm_90
}
# dQ: one program per query tile (block_m) looping over KV tiles (block_n).
ATTN_BWD_DQ: Dict[int, AttnConfig] = {
    16: AttnConfig(128, 32, 8, 2),
    32: AttnConfig(128, 32, 8, 2),
    64: AttnConfig(128, 32, 8, 2),
    128: AttnConfig(128, 32, 8, 2),
    256: AttnConfig(64, 32, 8, 2),  # 1 stage spilled (144 B sm_90, 1400 B sm_80); 2 do not
}
# Split-KV decode: block_m is the number of (query head, query position) rows of one KV
# head group processed together; block_n the KV tile.
ATTN_DECODE: Dict[int, AttnConfig] = {
    16: AttnConfig(16, 64, 4, 2),
    32: AttnConfig(16, 64, 4, 2),
    64: AttnConfig(16, 64, 4, 2),
    128: AttnConfig(16, 64, 4, 2),
    256: AttnConfig(16, 32, 4, 2),
}
# float32 inputs use IEEE fp32 dot products (FMA, not tensor cores): a correctness path.
# The FMA dot keeps whole head-dim rows of its operands in registers, so from head dim 64/128
# on the tiles shrink to 16 rows and the warps go up to 8; chosen by compiling for sm_80 and
# sm_90 (no spills, except dq at head dim 256: ~200 bytes).
_F32 = AttnConfig(32, 32, 4, 1)
_F32_WIDE = AttnConfig(16, 32, 8, 1)
ATTN_FWD_F32 = {16: AttnConfig(64, 32, 4, 1), 32: _F32, 64: _F32, 128: _F32_WIDE, 256: _F32_WIDE}
ATTN_BWD_DKDV_F32 = {16: _F32, 32: _F32, 64: _F32_WIDE, 128: _F32_WIDE, 256: _F32_WIDE}
ATTN_BWD_DQ_F32 = {16: _F32, 32: _F32, 64: AttnConfig(32, 32, 8, 1), 128: AttnConfig(16, 16, 8, 1),
                   256: AttnConfig(16, 16, 8, 1)}
ATTN_DECODE_F32 = {16: AttnConfig(16, 32, 4, 1), 32: AttnConfig(16, 32, 4, 1), 64: AttnConfig(16, 32, 4, 1),
                   128: _F32_WIDE, 256: _F32_WIDE}
FP32_TABLES = {id(ATTN_FWD): ATTN_FWD_F32, id(ATTN_BWD_DKDV): ATTN_BWD_DKDV_F32,
               id(ATTN_BWD_DQ): ATTN_BWD_DQ_F32, id(ATTN_DECODE): ATTN_DECODE_F32}


def attn_config(table: Dict[int, AttnConfig], head_dim: int, dtype: torch.dtype) -> AttnConfig:
    """The shipped tile configuration of ``table`` for this head dim and dtype."""
    if dtype == torch.float32:
        table = FP32_TABLES[id(table)]
    return table[padded_head_dim(head_dim)]


# Under TRITON_INTERPRET every program runs in Python: few, large programs are fastest.
ATTN_INTERPRET = AttnConfig(64, 64, 4, 1)
ATTN_DECODE_INTERPRET = AttnConfig(16, 64, 4, 1)


@dataclass(frozen=True)
class CEConfig:
    block_v: int
    num_warps: int


CE_FWD = CEConfig(block_v=4096, num_warps=8)
CE_BWD = CEConfig(block_v=4096, num_warps=8)
CE_INTERPRET = CEConfig(block_v=8192, num_warps=4)

# Dtypes every attention kernel is compiled for by the AOT check.
ATTN_DTYPES: Tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32)


def padded_head_dim(d: int) -> int:
    p = 16
    while p < d:
        p *= 2
    return p
