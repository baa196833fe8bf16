import math
from collections import Counter

import numpy as np
import pytest

from fastllm.train.data import read_meta
from fastllm.train.metrics import JsonlLog, flops_per_token, mfu, peak_flops, read_log, save_loss_curve, unigram_entropy


def test_flops_and_mfu():
    # gpt2-124M at T=1024: 6N + 12 * 12 layers * 768 * 1024
    assert flops_per_token(124_000_000, 12, 768, 1024) == 6 * 124e6 + 12 * 12 * 768 * 1024
    assert mfu(1000.0, 1e9, 1e13) == pytest.approx(0.1)
    assert mfu(1000.0, 1e9, 1e13, n_devices=2) == pytest.approx(0.05)
    assert mfu(1000.0, 1e9, None) is None
    assert peak_flops("cpu") is None


def test_unigram_entropy_matches_a_direct_count(data_dir):
    meta = read_meta(data_dir)
    tokens = np.concatenate([np.fromfile(data_dir / s["file"], dtype=meta["dtype"])
                             for s in meta["splits"]["val"]["shards"]])
    counts = Counter(tokens.tolist())
    total = sum(counts.values())
    expected = -sum(c / total * math.log(c / total) for c in counts.values())
    assert unigram_entropy(data_dir, "val", block=1000) == pytest.approx(expected, rel=1e-9)


def test_log_and_loss_curve(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    for step in range(1, 6):
        log.write(step=step, loss=5.0 / step)
    log.write(step=5, val_loss=1.5)
    records = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 5] and all("time" in r for r in records)
    png = save_loss_curve(records, tmp_path / "loss.png", baseline=4.0)
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no training loss"):
        save_loss_curve([{"step": 1, "val_loss": 2.0}], tmp_path / "x.png")
