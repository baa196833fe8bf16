"""Throughput and model FLOPs utilisation (MFU), and the JSONL training log."""

from __future__ import annotations

import json
import time
from pathlib import Path

# Dense bf16 peak FLOP/s (no sparsity) of common accelerators, matched by substring of
# torch.cuda.get_device_name(). MFU is reported only for devices listed here.
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("A10G", 125e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),
)


def flops_per_token(n_params: int, n_layer: int, n_embd: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the matmuls with parameters, plus 12*L*d*T for attention
    scores and weighted values (forward + backward), as in the PaLM paper's appendix."""
    return 6.0 * n_params + 12.0 * n_layer * n_embd * seq_len


def peak_flops(device) -> float | None:
    """The bf16 peak of ``device`` (per GPU), or None when unknown (CPUs included)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


def mfu(tokens_per_s: float, flops_per_tok: float, peak: float | None, n_devices: int = 1) -> float | None:
    if not peak:
        return None
    return tokens_per_s * flops_per_tok / (peak * n_devices)


class JsonlLog:
    """Appends one JSON object per line (flushed at once, so a crash keeps what was logged)."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record) -> None:
        if not self.enabled:
            return
        record.setdefault("time", round(time.time(), 3))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def read_log(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
