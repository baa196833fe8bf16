"""GPU kernels in Triton with pure-PyTorch reference paths (``pip install fastllm[torch]``).

On CUDA tensors the Triton kernels run; on CPU tensors the reference implementations run,
except under ``TRITON_INTERPRET=1`` where the Triton kernels run in Triton's interpreter.
``FASTLLM_KERNELS=triton|reference|auto`` or :func:`force_backend` force a path (see
:mod:`fastllm.kernels.dispatch`). Triton itself is imported only when a kernel launches, so
the reference path works where Triton is not installed.

Modules: ``attention`` (flash_attention, flash_decode: dispatch and autograd) launching
``attention_fwd``, ``attention_bwd`` and ``attention_decode`` (Triton kernels and launchers,
imported at the first launch) with ``attention_reference`` (PyTorch; the mask builder
``attention_mask``); ``padding`` (padding masks as the kernels' padded-batch rows:
``padded_rows``); ``sdpa`` (the torch SDPA drop-in); ``cross_entropy`` (function, autograd,
launchers and kernels) with ``cross_entropy_reference``; ``linear_cross_entropy`` (fused LM
head + loss, on the cross-entropy kernels); ``loss_reduction`` (mean/sum/none over the rows
not ignored, for every loss path); ``losses`` (nn.Module wrappers); ``checks`` (argument
validation); ``configs`` (launch tiles by kernel and dtype); ``dispatch`` (backend choice);
``tl_ops`` (shared ``@triton.jit`` helpers); ``_aot`` (developer tool: compiles every shipped
configuration for sm_80/sm_90 without a GPU).
"""

from .attention import flash_attention, flash_decode
from .cross_entropy import cross_entropy
from .dispatch import force_backend, interpreting, requested_backend, select_backend
from .linear_cross_entropy import linear_cross_entropy
from .losses import CrossEntropyLoss, LinearCrossEntropyLoss
from .padding import PaddedRows, padded_rows
from .sdpa import scaled_dot_product_attention

__all__ = [
    "CrossEntropyLoss",
    "LinearCrossEntropyLoss",
    "PaddedRows",
    "cross_entropy",
    "linear_cross_entropy",
    "flash_attention",
    "flash_decode",
    "force_backend",
    "interpreting",
    "padded_rows",
    "requested_backend",
    "scaled_dot_product_attention",
    "select_backend",
]
