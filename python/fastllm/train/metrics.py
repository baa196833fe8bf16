"""Measuring a run: throughput and MFU, the JSONL log, the unigram baseline and the loss curve.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from fastllm.files import write_text_atomic

from .data import TokenStream


# -- metrics -------------------------------------------------------------------------------
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

    def truncate_after(self, step: int) -> None:
        """Drops the records of steps after ``step``: a run resumed from a checkpoint at ``step``
        logs those steps again, and the log must not hold them twice."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [r for r in read_log(self.path) if not isinstance(r.get("step"), int) or r["step"] <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL log; a last line cut short by a crash is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ValueError(f"{path}:{i + 1}: not a JSON record") from None
    return records


# -- unigram -------------------------------------------------------------------------------
def unigram_entropy(data_dir: str | Path, split: str = "val", block: int = 1 << 24) -> float:
    """Entropy in nats of the token unigram distribution of ``split`` (streamed in blocks)."""
    stream = TokenStream(data_dir, split)
    counts = np.zeros(stream.meta["vocab_size"], dtype=np.int64)
    for shard in stream.shards:
        for start in range(0, len(shard), block):
            counts += np.bincount(np.asarray(shard[start : start + block]), minlength=len(counts))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


# -- plots ---------------------------------------------------------------------------------
def save_loss_curve(log_records: list[dict], path: str | Path, baseline: float | None = None,
                    title: str = "training loss") -> Path:
    """Plots train loss (and validation loss, when logged) against the step, from ``log.jsonl`` records."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [(r["step"], r["loss"]) for r in log_records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in log_records if "val_loss" in r]
    if not train:
        raise ValueError("no training loss records to plot")
    fig = Figure(figsize=(7, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(*zip(*train), label="train loss", color="tab:blue", linewidth=1.2)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", color="tab:orange", markersize=4)
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="tab:gray", label=f"unigram baseline ({baseline:.2f})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
