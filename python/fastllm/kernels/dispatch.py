"""Choosing between the Triton kernels and the pure-PyTorch reference implementations.

The rule, for every public function in :mod:`fastllm.kernels`:

* ``FASTLLM_KERNELS=auto`` (the default): Triton on CUDA tensors; the reference on CPU
  tensors, except when ``TRITON_INTERPRET=1`` is set, where the Triton kernels run in
  Triton's interpreter (this is how the test suite covers the kernels without a GPU).
* ``FASTLLM_KERNELS=triton``: always the Triton kernels (an error on CPU tensors unless
  ``TRITON_INTERPRET=1``).
* ``FASTLLM_KERNELS=reference``: always the reference implementations.

The environment variable is read on every call; :func:`force_backend` overrides it for
a block of code (thread-local)::

    with fastllm.kernels.force_backend("reference"):
        out = fastllm.kernels.flash_attention(q, k, v, causal=True)

Triton is imported only when a kernel is about to launch (``import fastllm.kernels`` does
not import it), and "auto" never picks Triton when it cannot be imported (it is not
installed on macOS or Windows). ``TRITON_INTERPRET`` is read by Triton when the kernels are
defined, at their first launch, so it must be set before that.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from typing import Iterator, Literal

import torch

Backend = Literal["triton", "reference"]
_CHOICES = ("auto", "triton", "reference")
ENV_VAR = "FASTLLM_KERNELS"

_local = threading.local()


def interpreting() -> bool:
    """True when Triton kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether Triton can be imported (it is imported to find out)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def requested_backend() -> str:
    """The backend asked for: the innermost :func:`force_backend`, else the env var."""
    forced = getattr(_local, "stack", None)
    if forced:
        return forced[-1]
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of {', '.join(_CHOICES)}")
    return value


@contextlib.contextmanager
def force_backend(backend: str) -> Iterator[None]:
    """Force ``"triton"``, ``"reference"`` or ``"auto"`` inside a ``with`` block."""
    if backend not in _CHOICES:
        raise ValueError(f"backend {backend!r}: expected one of {', '.join(_CHOICES)}")
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(backend)
    try:
        yield
    finally:
        stack.pop()


def select_backend(*tensors: torch.Tensor) -> Backend:
    """Pick the implementation for a call on ``tensors`` (all on one device)."""
    want = requested_backend()
    device = tensors[0].device
    if want == "reference":
        return "reference"
    # the device first: on the CPU without the interpreter, Triton is not even imported
    on_triton_device = device.type == "cuda" or interpreting()
    if want == "triton":
        if not on_triton_device:
            raise RuntimeError(
                f"{ENV_VAR}=triton but the tensors are on {device} and TRITON_INTERPRET is not "
                "set: the Triton kernels need CUDA tensors (or TRITON_INTERPRET=1 on the CPU)"
            )
        if not triton_available():
            raise RuntimeError(
                f"{ENV_VAR}=triton but Triton cannot be imported (pip install triton; Linux only): "
                f"use {ENV_VAR}=auto or reference"
            )
        return "triton"
    return "triton" if on_triton_device and triton_available() else "reference"
