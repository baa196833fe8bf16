"""GPU kernels in Triton with pure-PyTorch reference paths (``pip install fastllm[torch]``).

On CUDA tensors the Triton kernels run; on CPU tensors the reference implementations run,
except under ``TRITON_INTERPRET=1`` where the Triton kernels run in Triton's interpreter.
``FASTLLM_KERNELS=triton|reference|auto`` or :func:`force_backend` force a path (see
:mod:`fastllm.kernels.dispatch`). Triton itself is imported only when a kernel launches, so
the reference path works where Triton is not installed.
"""

from .attention import flash_attention, flash_decode
from .cross_entropy import cross_entropy
from .dispatch import force_backend, interpreting, requested_backend, select_backend
from .linear_cross_entropy import linear_cross_entropy
from .losses import CrossEntropyLoss, LinearCrossEntropyLoss
from .sdpa import scaled_dot_product_attention

__all__ = [
    "CrossEntropyLoss",
    "LinearCrossEntropyLoss",
    "cross_entropy",
    "linear_cross_entropy",
    "flash_attention",
    "flash_decode",
    "force_backend",
    "interpreting",
    "requested_backend",
    "scaled_dot_product_attention",
    "select_backend",
]
