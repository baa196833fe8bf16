"""Reading and writing GPT-2 checkpoints in the layout Hugging Face ships them.

A checkpoint directory holds ``config.json`` and the weights, ``model.safetensors`` (possibly
sharded with ``model.safetensors.index.json``) or ``pytorch_model.bin``. Hugging Face stores
the linear layers of GPT-2 as ``Conv1D`` with ``(in, out)`` weights; fastllm uses
``nn.Linear`` ``(out, in)``, so those four weights are transposed on the way in and out. Key
names are otherwise the same (with or without the ``transformer.`` prefix of
``GPT2LMHeadModel``); the output layer is tied to ``wte`` and not stored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch

from fastllm.files import atomic_output, write_bytes_atomic, write_text_atomic

from .config import GPTConfig

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")

# Weights stored as Conv1D (in, out) by Hugging Face.
CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Buffers older checkpoints carry (the causal mask), not weights.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")

PathLike = Union[str, os.PathLike]


def resolve_directory(name_or_path: PathLike) -> Path:
    """A local checkpoint directory, or a hub name downloaded with ``huggingface_hub`` if installed."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{path} is a file; expected a checkpoint directory holding {CONFIG_FILE}")
    text = str(name_or_path)
    looks_local = path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1 or os.sep != "/" and os.sep in text
    if looks_local:
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(f"checkpoint directory {path} does not exist") from None
    try:
        local = snapshot_download(
            repo_id=str(name_or_path),
            allow_patterns=[CONFIG_FILE, SAFETENSORS_FILE, SAFETENSORS_INDEX, "model-*.safetensors", *TOKENIZER_FILES],
        )
    except Exception as exc:  # offline, unknown repo, malformed name...
        raise FileNotFoundError(
            f"checkpoint directory {path} does not exist and could not be fetched from the hub: {exc}"
        ) from None
    return Path(local)


def read_config(directory: Path) -> GPTConfig:
    file = directory / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_FILE}; not a GPT-2 checkpoint directory")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from None
    try:
        return GPTConfig.from_hf_dict(data)
    except TypeError as exc:
        raise ValueError(f"{file}: {exc}") from None


def _load_safetensors(file: Path) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{file} is not a readable safetensors file: {exc}") from None


def read_weights(directory: Path) -> Dict[str, torch.Tensor]:
    """The raw tensors of the checkpoint, as stored."""
    if (directory / SAFETENSORS_FILE).is_file():
        return _load_safetensors(directory / SAFETENSORS_FILE)
    index = directory / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{index} is not a valid safetensors index: {exc!r}") from None
        tensors: Dict[str, torch.Tensor] = {}
        for shard in shards:
            if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
                raise ValueError(f"{index} names shard {shard!r}, which is not a file inside {directory}")
            if not (directory / shard).is_file():
                raise FileNotFoundError(f"{index} lists {shard}, which is missing")
            tensors.update(_load_safetensors(directory / shard))
        return tensors
    if (directory / TORCH_FILE).is_file():
        try:
            tensors = torch.load(directory / TORCH_FILE, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors, truncated zip, disallowed globals...
            raise ValueError(f"{directory / TORCH_FILE} could not be read: {exc}") from None
        if not isinstance(tensors, dict):
            raise ValueError(f"{directory / TORCH_FILE} does not hold a state dict")
        return tensors
    raise FileNotFoundError(f"{directory} has no weights: expected {SAFETENSORS_FILE} or {TORCH_FILE}")


def hf_to_fastllm(tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename to fastllm's keys and transpose the Conv1D weights; drops buffers and the tied head."""
    out: Dict[str, torch.Tensor] = {}
    head = None
    for key, value in tensors.items():
        if key.endswith(IGNORED_SUFFIXES):
            continue
        if key == "lm_head.weight":
            head = value
            continue
        name = key if key.startswith("transformer.") else f"transformer.{key}"
        if name.endswith(CONV1D_SUFFIXES):
            if value.dim() != 2:
                raise ValueError(f"checkpoint tensor {key} should be 2-D, has shape {tuple(value.shape)}")
            value = value.t()
        out[name] = value.contiguous()
    wte = out.get("transformer.wte.weight")
    if head is not None and wte is not None and (head.shape != wte.shape or not torch.equal(head, wte)):
        raise ValueError("checkpoint has an lm_head.weight different from wte: untied heads are not supported")
    return out


def fastllm_to_hf(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The state dict of ``GPT2LMHeadModel`` (Conv1D weights, tied head left out)."""
    out: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "lm_head.weight":
            continue
        if key.endswith(CONV1D_SUFFIXES):
            value = value.t()
        out[key] = value.detach().contiguous()
    return out


def check_against(config: GPTConfig, state: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor]) -> None:
    """Raise a ValueError naming every mismatch between the config's model and the weights."""
    missing = [k for k in expected if k not in state and k != "lm_head.weight"]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: weights {tuple(state[k].shape)}, config expects {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if wrong:
        problems.append("shape mismatch: " + "; ".join(wrong[:4]) + (" ..." if len(wrong) > 4 else ""))
    if missing:
        problems.append("missing: " + ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
    if unexpected:
        problems.append("unexpected: " + ", ".join(unexpected[:6]) + (" ..." if len(unexpected) > 6 else ""))
    if problems:
        summary = (
            f"n_layer={config.n_layer}, n_head={config.n_head}, n_embd={config.n_embd}, "
            f"vocab_size={config.vocab_size}, block_size={config.block_size}"
        )
        raise ValueError(f"config.json ({summary}) does not match the weights: " + " | ".join(problems))
    for key, value in state.items():
        if not value.is_floating_point():
            raise ValueError(f"checkpoint tensor {key} has dtype {value.dtype}, expected floating point")


def read_checkpoint(name_or_path: PathLike) -> Tuple[GPTConfig, Dict[str, torch.Tensor]]:
    """The config and the weights (fastllm's names and layout) of a checkpoint directory or hub name;
    ``GPT.from_pretrained`` builds the model from them."""
    directory = resolve_directory(name_or_path)
    config = read_config(directory)
    return config, hf_to_fastllm(read_weights(directory))


def write_checkpoint(
    directory: PathLike,
    config: GPTConfig,
    state: Dict[str, torch.Tensor],
    tokenizer=None,
    safe_serialization: bool = True,
) -> Path:
    """Write ``config.json`` and the weights of ``state`` (fastllm's names; and ``tokenizer.json``
    if given) so that both :func:`read_checkpoint` and ``transformers.GPT2LMHeadModel`` read them.
    Each file is written atomically."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    eos = getattr(tokenizer, "eot_token", None) if tokenizer is not None else None
    write_text_atomic(out / CONFIG_FILE, json.dumps(config.to_hf_dict(eos_token_id=eos), indent=2) + "\n")
    tensors = {k: v.cpu() for k, v in fastllm_to_hf(state).items()}
    if safe_serialization:
        from safetensors.torch import save

        write_bytes_atomic(out / SAFETENSORS_FILE, save(tensors, metadata={"format": "pt"}))
    else:
        with atomic_output(out / TORCH_FILE) as handle:
            torch.save(tensors, handle)
    if tokenizer is not None:
        tokenizer.to_hf_json(str(out / "tokenizer.json"))
    return out
