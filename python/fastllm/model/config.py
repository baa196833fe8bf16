"""``GPTConfig``: the shape of a GPT-2-class model, its presets and the HF ``config.json`` mapping."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

# The GPT-2 family as released by OpenAI (all with a 1024-token context and 50257 tokens).
PRESETS: Dict[str, Dict[str, int]] = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
}

# fastllm field -> key in a Hugging Face GPT-2 ``config.json``.
_HF_KEYS = {
    "vocab_size": "vocab_size",
    "block_size": "n_positions",
    "n_layer": "n_layer",
    "n_head": "n_head",
    "n_embd": "n_embd",
    "layer_norm_epsilon": "layer_norm_epsilon",
}


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT-2-style decoder.

    ``bias=False`` drops the biases of the linear layers and LayerNorms (GPT-2 has them);
    ``dropout`` applies to the embeddings, the attention probabilities and the residual
    branches while training, as GPT-2 does.
    """

    vocab_size: int = 50257
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not float(self.layer_norm_epsilon) > 0:
            raise ValueError(f"GPTConfig.layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    # -- presets -------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> "GPTConfig":
        """The configuration of a released GPT-2 size: ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``."""
        return cls.from_preset(name)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "GPTConfig":
        """A preset with some fields replaced, e.g. ``from_preset("gpt2", dropout=0.1)``."""
        if name not in PRESETS:
            raise ValueError(f"unknown GPT preset {name!r}; known: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    # -- plain dicts -------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "GPTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    # -- Hugging Face config.json ------------------------------------------------
    def to_hf_dict(self, eos_token_id: Optional[int] = None) -> Dict[str, Any]:
        """A ``config.json`` that ``transformers.GPT2Config`` reads.

        ``eos_token_id`` defaults to the last id, where GPT-2 keeps ``<|endoftext|>``.
        """
        eos = self.vocab_size - 1 if eos_token_id is None else int(eos_token_id)
        out: Dict[str, Any] = {hf: getattr(self, ours) for ours, hf in _HF_KEYS.items()}
        out.update(
            architectures=["GPT2LMHeadModel"],
            model_type="gpt2",
            n_ctx=self.block_size,
            n_inner=None,
            activation_function="gelu_new",
            resid_pdrop=self.dropout,
            embd_pdrop=self.dropout,
            attn_pdrop=self.dropout,
            initializer_range=0.02,
            scale_attn_weights=True,
            scale_attn_by_inverse_layer_idx=False,
            reorder_and_upcast_attn=False,
            tie_word_embeddings=True,
            bos_token_id=eos,
            eos_token_id=eos,
        )
        return out

    @classmethod
    def from_hf_dict(cls, data: Dict[str, Any]) -> "GPTConfig":
        """Read a GPT-2 ``config.json``; refuses settings this model does not implement."""
        if not isinstance(data, dict):
            raise ValueError("config.json must hold a JSON object")
        model_type = data.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise ValueError(f"config.json: model_type {model_type!r} is not supported (only 'gpt2')")
        missing = [hf for hf in ("vocab_size", "n_layer", "n_head", "n_embd") if hf not in data]
        if missing:
            raise ValueError(f"config.json is missing {', '.join(missing)}")
        n_inner = data.get("n_inner")
        if n_inner not in (None, 4 * data["n_embd"]):
            raise ValueError(f"config.json: n_inner={n_inner} is not supported (the MLP is 4 * n_embd wide)")
        activation = data.get("activation_function", "gelu_new")
        if activation not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"config.json: activation_function {activation!r} is not supported (only tanh GELU)")
        for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
            if data.get(flag):
                raise ValueError(f"config.json: {flag}=true is not supported")
        if data.get("tie_word_embeddings", True) is False:
            raise ValueError("config.json: untied embeddings are not supported (GPT-2 ties lm_head to wte)")
        fields: Dict[str, Any] = {}
        for ours, hf in _HF_KEYS.items():
            if hf in data:
                fields[ours] = data[hf]
        if "block_size" not in fields and "n_ctx" in data:
            fields["block_size"] = data["n_ctx"]
        fields["dropout"] = float(data.get("resid_pdrop", 0.0))
        return cls(**fields)
