"""Training checkpoints: everything needed to continue a run exactly.

One file, ``checkpoint.pt`` (``torch.save`` of a dict): model and optimizer state,
the schedule, the step, the RNG states (Python, NumPy, torch CPU and CUDA), the data
loader's position and the run's config. It is written to a temporary file in the
same directory, flushed to disk, then renamed over the old one, so an interrupted
save leaves the previous checkpoint intact: a killed run loses only the steps since
its last checkpoint.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "fastllm-train-checkpoint"
VERSION = 1


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Atomically writes ``state`` (plus a format tag) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save({"format": FORMAT, "version": VERSION, **state}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Reads a checkpoint written by :func:`save_checkpoint`, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a corrupt file
        raise ValueError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fastllm training checkpoint")
    if state.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has version {state.get('version')}, expected {VERSION}")
    return state


def check_model_config(saved: dict, current: dict, path: str | Path = "checkpoint") -> None:
    """Refuses a checkpoint whose model shape differs from the configured one."""
    shape_keys = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias")
    diffs = [f"{k}: checkpoint {saved.get(k)} vs configured {current.get(k)}"
             for k in shape_keys if saved.get(k) != current.get(k)]
    if diffs:
        raise ValueError(
            f"{path} is from a different model size ({'; '.join(diffs)}); use the same model "
            "settings or another --out directory"
        )
