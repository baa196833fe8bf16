"""Training checkpoints: everything needed to continue a run exactly, and nothing that runs code.

One file, ``checkpoint.pt`` (``torch.save`` of a dict): model and optimizer state, the
schedule, the step, the RNG states (Python, NumPy, torch CPU and CUDA), the data loader's
position and the run's config. Only tensors and plain data (dicts, lists, tuples, numbers,
strings) are stored, and the file is read with ``torch.load(weights_only=True)``, whose
unpickler refuses any other object: a crafted checkpoint cannot execute code on resume.
It is written atomically (``fastllm.files``): an interrupted save leaves the previous
checkpoint intact, so a killed run loses only the steps since its last checkpoint.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from fastllm.files import atomic_output

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "fastllm-train-checkpoint"
VERSION = 1


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state_to_plain(state: tuple) -> list:
    # ("MT19937", uint32 key array, pos, has_gauss, cached_gaussian): the array as a tensor
    # (int64 holds every uint32), the rest as plain numbers, all readable with weights_only
    name, key, pos, has_gauss, cached = state
    return [str(name), torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def _numpy_state_from_plain(state) -> tuple:
    name, key, pos, has_gauss, cached = state
    return (name, np.asarray(key, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached)


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Atomically writes ``state`` (plus a format tag) to ``path``."""
    path = Path(path)
    with atomic_output(path) as handle:
        torch.save({"format": FORMAT, "version": VERSION, **state}, handle)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Reads a checkpoint written by :func:`save_checkpoint`, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
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
