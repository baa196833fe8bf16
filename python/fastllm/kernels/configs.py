"""Launch configurations shipped with the kernels, keyed by kernel name (and dtype).

The launchers read them through :func:`attn_config` and :func:`ce_config`;
:mod:`fastllm.kernels._aot` compiles every entry for ``sm_80`` and ``sm_90`` in the test
suite, so a configuration that does not compile (or does not fit in shared memory) fails a
test rather than a user's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from .dispatch import interpreting


@dataclass(frozen=True)
class AttnConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


# The dtype part of the attention keys: fp16 and bf16 share their tiles.
HALF = "half"
FP32 = "fp32"

# float32 inputs use IEEE fp32 dot products (FMA, not tensor cores): a correctness path.
# The FMA dot keeps whole head-dim rows of its operands in registers, so from head dim 64/128
# on the tiles shrink to 16 rows and the warps go up to 8; chosen by compiling for sm_80 and
# sm_90 (no spills, except dq at head dim 256: ~200 bytes).
_F32 = AttnConfig(32, 32, 4, 1)
_F32_WIDE = AttnConfig(16, 32, 8, 1)

# (kernel, precision) -> {padded head dim (power of two, 16..256): tiles}. The half-precision
# tiles of the forward and backward are the winners of benches/tune_attention.py on an H200
# (2026-12-04, bf16, non-causal, 16384 tokens at seq 4096, heads x head dim 2048; the
# backward's numbers time the whole backward with one kernel's tiles changed; benches/RESULTS.md).
# The float32 and decode tiles were chosen from sm_90 compile statistics (no spills, registers
# <= 255; see ``python -m fastllm.kernels._aot``) and are not yet measured on a GPU.
ATTN: Dict[Tuple[str, str], Dict[int, AttnConfig]] = {
    ("attn_fwd_kernel", HALF): {
        16: AttnConfig(64, 64, 4, 3),  # H200: 175 TFLOP/s against 141 for (128, 64, 8, 3)
        32: AttnConfig(64, 128, 4, 3),  # 297 against 254 for (128, 64, 8, 3)
        64: AttnConfig(128, 64, 8, 3),
        128: AttnConfig(64, 64, 4, 3),  # 493 against 398 for (128, 64, 8, 2)
        256: AttnConfig(128, 64, 8, 2),  # 506 against 169 for (64, 32, 8, 2); sm_80 spills 360 B
    },
    ("attn_fwd_kernel", FP32): {16: AttnConfig(64, 32, 4, 1), 32: _F32, 64: _F32, 128: _F32_WIDE, 256: _F32_WIDE},
    # dK/dV: one program per KV tile (block_n) looping over query tiles (block_m).
    ("attn_bwd_dkdv_kernel", HALF): {
        16: AttnConfig(64, 64, 4, 2),  # H200 backward: 148 TFLOP/s against 136 for (32, 128, 8, 2)
        32: AttnConfig(64, 128, 4, 2),  # 243 against 201 for (32, 128, 8, 2)
        64: AttnConfig(64, 64, 4, 2),  # 299 against 226 for (32, 128, 8, 2)
        128: AttnConfig(32, 64, 4, 2),  # 297 against 259 for (32, 128, 8, 2)
        256: AttnConfig(32, 64, 8, 1),  # 133 against 92 for (32, 32, 8, 1)
    },
    ("attn_bwd_dkdv_kernel", FP32): {16: _F32, 32: _F32, 64: _F32_WIDE, 128: _F32_WIDE, 256: _F32_WIDE},
    # dQ: one program per query tile (block_m) looping over KV tiles (block_n).
    ("attn_bwd_dq_kernel", HALF): {
        16: AttnConfig(64, 64, 4, 2),  # H200 backward: 150 TFLOP/s against 136 for (128, 32, 8, 2)
        32: AttnConfig(64, 64, 4, 2),  # 216 against 201 for (128, 32, 8, 2)
        64: AttnConfig(64, 64, 4, 2),  # 249 against 226 for (128, 32, 8, 2)
        128: AttnConfig(64, 64, 4, 2),  # 313 against 263 for (128, 32, 8, 2)
        # 107 against 92 for (64, 32, 8, 2); (128, 32, 8, 1) measured 108 but spills 6.9 KB on sm_80
        256: AttnConfig(64, 32, 4, 2),
    },
    ("attn_bwd_dq_kernel", FP32): {
        16: _F32, 32: _F32, 64: AttnConfig(32, 32, 8, 1), 128: AttnConfig(16, 16, 8, 1), 256: AttnConfig(16, 16, 8, 1),
    },
    # Split-KV decode: block_m is the number of (query head, query position) rows of one KV
    # head group processed together; block_n the KV tile.
    ("attn_decode_split_kernel", HALF): {
        16: AttnConfig(16, 64, 4, 2),
        32: AttnConfig(16, 64, 4, 2),
        64: AttnConfig(16, 64, 4, 2),
        128: AttnConfig(16, 64, 4, 2),
        256: AttnConfig(16, 32, 4, 2),
    },
    ("attn_decode_split_kernel", FP32): {
        16: AttnConfig(16, 32, 4, 1), 32: AttnConfig(16, 32, 4, 1), 64: AttnConfig(16, 32, 4, 1),
        128: _F32_WIDE, 256: _F32_WIDE,
    },
}

# Under TRITON_INTERPRET every program runs in Python: few, large programs are fastest.
ATTN_INTERPRET: Dict[str, AttnConfig] = {
    "attn_fwd_kernel": AttnConfig(64, 64, 4, 1),
    "attn_bwd_dkdv_kernel": AttnConfig(64, 64, 4, 1),
    "attn_bwd_dq_kernel": AttnConfig(64, 64, 4, 1),
    "attn_decode_split_kernel": AttnConfig(16, 64, 4, 1),
}


@dataclass(frozen=True)
class CEConfig:
    block_v: int
    num_warps: int
    num_stages: int = 3  # Triton's default for CUDA: the loads of later tiles are issued early


# Cross-entropy tiles do not depend on the dtype (the math is fp32 throughout).
CE: Dict[str, CEConfig] = {
    # H200 (2026-12-04, tune_cross_entropy.py): 4 warps 2.48 / 3.55 TB/s against 8 warps' 2.13 /
    # 3.26 at vocab 50257 / 128256 (stages 1-4 alike); the backward's 8 warps were within 3% of the best.
    "ce_fwd_kernel": CEConfig(block_v=4096, num_warps=4),
    "ce_bwd_kernel": CEConfig(block_v=4096, num_warps=8),
}
CE_INTERPRET = CEConfig(block_v=8192, num_warps=4)


def precision(dtype: torch.dtype) -> str:
    """The dtype part of an :data:`ATTN` key."""
    return FP32 if dtype == torch.float32 else HALF


def attn_config(kernel: str, head_dim: int, dtype: torch.dtype, override: Optional[AttnConfig] = None) -> AttnConfig:
    """The tiles a launch of ``kernel`` uses: ``override``, else the interpreter's, else the
    :data:`ATTN` entry for this dtype and head dim."""
    if override is not None:
        return override
    if interpreting():
        return ATTN_INTERPRET[kernel]
    return ATTN[kernel, precision(dtype)][padded_head_dim(head_dim)]


def ce_config(kernel: str, block_v: Optional[int] = None) -> CEConfig:
    """The tiles a launch of cross-entropy ``kernel`` uses; ``block_v`` overrides the vocab tile."""
    if block_v is not None:
        return CEConfig(block_v=block_v, num_warps=CE[kernel].num_warps, num_stages=CE[kernel].num_stages)
    return CE_INTERPRET if interpreting() else CE[kernel]


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def padded_head_dim(d: int) -> int:
    """The power-of-two head-dim tile (at least 16) a head dim is computed in."""
    return max(16, next_power_of_2(d))
