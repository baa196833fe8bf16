"""Test-suite set-up shared by every test directory.

Triton reads TRITON_INTERPRET when a kernel module is imported, so it is set
here, before any test module imports ``fastllm.kernels``: without a CUDA GPU the
Triton kernels run in Triton's CPU interpreter.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _cuda_available() -> bool:
    # No NVIDIA device node or driver means no CUDA: skip importing torch (seconds) just to learn that.
    if not any(Path("/dev").glob("nvidia*")) and not Path("/proc/driver/nvidia").exists():
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


HAS_CUDA = _cuda_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Real vocabularies and corpora live beside the checkout (see ../shared/data/README.md).
_SHARED_CANDIDATES = [
    os.environ.get("FASTLLM_SHARED_DATA", ""),
    str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
]


def shared_data_dir() -> Path | None:
    for candidate in _SHARED_CANDIDATES:
        if candidate and Path(candidate, "gpt2.tiktoken").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need it are skipped when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data (real vocab files and corpora) is not present; set FASTLLM_SHARED_DATA")
    return path


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (none available)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
