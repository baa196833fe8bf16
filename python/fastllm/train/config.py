"""``TrainConfig``: every setting of a pre-training run, from a TOML/JSON file and/or flags.

Precedence: dataclass defaults < config file < command-line flags. The CLI flags are
generated from the dataclass fields (``--batch-size`` for ``batch_size``...), so a
setting is declared in exactly one place.
"""

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from fastllm import options


@dataclass
class TrainConfig:
    data: str = ""  # prepared data directory (fastllm prepare --out)
    out: str = "out/train"  # checkpoints, log.jsonl and the exported model
    # model: a GPT-2 preset name, or the free sizes below
    model: Optional[str] = None
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256
    dropout: float = 0.0
    bias: bool = True
    # batch: tokens per optimizer step = batch_size * seq_len * grad_accum * processes
    batch_size: int = 16
    seq_len: Optional[int] = None  # defaults to block_size (the preset's context with --model)
    grad_accum: int = 1
    # optimizer and schedule
    max_steps: int = 1000
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    # evaluation, checkpoints, logging
    eval_interval: int = 250
    eval_batches: int = 20
    checkpoint_interval: int = 250
    log_interval: int = 10
    # runtime
    seed: int = 1337
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | float32 | bfloat16
    kernels: str = "auto"  # fastllm.kernels backend: auto | triton | reference
    resume: bool = True  # continue from OUT/checkpoint.pt when it exists
    export: bool = True  # write OUT/model (save_pretrained) at the end
    progress: bool = True

    def __post_init__(self):
        if self.model:  # a preset fixes the sizes (and an unknown name fails here)
            from fastllm.model import GPTConfig

            self.block_size = GPTConfig.from_preset(self.model).block_size
        if self.seq_len is None:
            self.seq_len = self.block_size
        options.check_fields(self, FIELD_CHECKS)
        if self.seq_len > self.block_size:
            raise ValueError(f"seq_len ({self.seq_len}) is longer than the context block_size ({self.block_size})")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def gpt_config(self, vocab_size: int):
        """The model's GPTConfig: a preset (``model``) or the free sizes, with ``vocab_size``."""
        from fastllm.model import GPTConfig

        if self.model:
            config = GPTConfig.from_preset(self.model, vocab_size=vocab_size, dropout=self.dropout, bias=self.bias)
        else:
            config = GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                               n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias)
        if self.seq_len > config.block_size:
            raise ValueError(f"seq_len ({self.seq_len}) is longer than the model's context ({config.block_size})")
        return config

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimizer step for one process."""
        return self.batch_size * self.seq_len * self.grad_accum


# Every setting's check (fastllm.options), run on config files and flags alike.
FIELD_CHECKS = {
    **{name: options.positive_int for name in (
        "n_layer", "n_head", "n_embd", "block_size", "batch_size", "seq_len", "grad_accum", "max_steps",
        "eval_interval", "eval_batches", "checkpoint_interval", "log_interval")},
    "dropout": options.unit_interval,
    "lr": options.positive_float,
    "min_lr": options.non_negative_float,
    "warmup_steps": options.non_negative_int,
    "weight_decay": options.non_negative_float,
    "beta1": options.unit_interval,
    "beta2": options.unit_interval,
    "grad_clip": options.non_negative_float,
    "seed": options.integer,
    "device": options.device,
    "dtype": options.choice("auto", "float32", "bfloat16"),
    "kernels": options.choice("auto", "triton", "reference"),
}

_HINTS = typing.get_type_hints(TrainConfig)


def _field_type(name: str) -> type:
    hint = _HINTS[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def read_config_file(path: Union[str, Path]) -> dict:
    """Settings from a ``.toml`` or ``.json`` file (a flat table of TrainConfig fields)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                raise ValueError("TOML config files need Python 3.11+; use a .json file") from None
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot parse config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table of settings")
    return data


def build_config(file_settings: Optional[dict] = None, overrides: Optional[dict] = None) -> TrainConfig:
    """A TrainConfig from file settings and flag overrides (``None`` values are ignored)."""
    merged: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for source in (file_settings or {}, overrides or {}):
        unknown = sorted(set(source) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        merged.update({k: v for k, v in source.items() if v is not None})
    for name, value in merged.items():
        kind = _field_type(name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            merged[name] = float(value)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"setting {name} must be {kind.__name__}, got {value!r}")
    return TrainConfig(**merged)


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Adds one ``--flag`` per TrainConfig field (default None: 'not given')."""
    for field in dataclasses.fields(TrainConfig):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field.name)
        help_text = f"(default: {field.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif field.name in FIELD_CHECKS:
            parser.add_argument(flag, type=options.flag(FIELD_CHECKS[field.name], flag), default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from ``--config FILE`` (if any) and the generated flags."""
    file_settings = read_config_file(args.config) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return build_config(file_settings, overrides)
