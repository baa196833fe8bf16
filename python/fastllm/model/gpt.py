"""The GPT-2 model in one file: key/value cache, attention, transformer block and ``GPT``.

``GPT`` is a GPT-2-style decoder (learned positions, pre-LayerNorm blocks, tied embeddings)
whose parameter names follow Hugging Face's ``GPT2LMHeadModel``. Every attention computation
goes through :func:`attend`, the one place that picks between ``fastllm.kernels`` and torch.
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastllm.kernels import flash_attention as _flash_attention
from fastllm.kernels import linear_cross_entropy as _linear_cross_entropy
from fastllm.kernels import scaled_dot_product_attention as _sdpa
from fastllm.kernels.attention_reference import attention_mask as _attention_mask
from fastllm.kernels.checks import FLOAT_DTYPES as _KERNEL_DTYPES
from fastllm.kernels.checks import MAX_HEAD_DIM as _KERNEL_MAX_D
from fastllm.kernels.checks import MIN_HEAD_DIM as _KERNEL_MIN_D
from fastllm.kernels.padding import PaddedRows, padded_rows

from .generate import generate as _generate
from . import hf_checkpoint
from .config import GPTConfig

INIT_STD = 0.02


class GPTOutput(NamedTuple):
    """What ``GPT.forward`` returns, whatever the flags.

    ``logits`` ``(batch, seq, vocab)``, or ``None`` when the fused loss computed ``loss``
    without building them; ``loss`` the mean cross-entropy over targets other than ``-100``
    (``None`` without targets); ``attentions`` the per-layer probabilities ``(batch, heads,
    seq, keys)`` with ``return_attention=True``, else ``None``.
    """

    logits: Optional[torch.Tensor]
    loss: Optional[torch.Tensor] = None
    attentions: Optional[List[torch.Tensor]] = None


# -- key/value cache -------------------------------------------------------------------
class KVCache:
    """Keys and values of every layer, ``(layers, batch, heads, max_len, head_dim)``, filled left to right.

    ``append`` writes a layer's new keys/values after the ``length`` already cached and returns
    the valid prefix (cached + new) to attend over; ``advance`` moves ``length`` on once every
    layer has appended.
    """

    def __init__(
        self,
        n_layer: int,
        batch: int,
        n_head: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: Optional[torch.device] = None,
    ) -> None:
        shape = (n_layer, batch, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0

    @classmethod
    def for_model(cls, model, batch: int, max_len: int) -> "KVCache":
        cfg = model.config
        param = next(model.parameters())
        return cls(cfg.n_layer, batch, cfg.n_head, max_len, cfg.head_dim, param.dtype, param.device)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} positions needed, {self.max_len} allocated")
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, steps: int) -> None:
        self.length += steps

    def reset(self) -> None:
        self.length = 0


# -- attention ---------------------------------------------------------------------------
def kernels_can_run(q: torch.Tensor) -> bool:
    """Whether ``fastllm.kernels.flash_attention`` accepts queries shaped and typed like ``q``."""
    return (
        q.dtype in _KERNEL_DTYPES
        and _KERNEL_MIN_D <= q.shape[-1] <= _KERNEL_MAX_D
    )


def visibility_mask(q_len: int, key_mask: Optional[torch.Tensor], kv_len: int, device) -> torch.Tensor:
    """Boolean ``(batch or 1, 1, q_len, kv_len)``: which keys each query may attend to.

    The kernels' causal mask (queries aligned to the end of the keys: query ``i`` sits at key
    position ``i + kv_len - q_len``). ``key_mask`` ``(batch, kv_len)`` marks real tokens
    (padding is False); a query always sees itself, so padding rows stay finite.
    """
    allowed = _attention_mask(q_len, kv_len, True, device=device)[None, None]
    if key_mask is not None:
        itself = _attention_mask(q_len, kv_len, False, window=(0, 0), device=device)
        allowed = (allowed & key_mask.bool()[:, None, None, :]) | itself[None, None]
    return allowed


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: Optional[torch.Tensor] = None,
    dropout_p: float = 0.0,
    rows: Optional[PaddedRows] = None,
) -> torch.Tensor:
    """Causal attention of ``q`` ``(B, H, Tq, D)`` over ``k``, ``v`` ``(B, H, Tk, D)``, ``Tq <= Tk``.

    ``key_mask`` ``(B, Tk)`` is True for real tokens, False for padding (``None``: no padding);
    ``rows`` the same padding as the kernels take it (:func:`fastllm.kernels.padding.padded_rows`
    of ``key_mask``, ``None`` when it has none). The kernels' flash attention serves every call
    it can, padded batches included (padding queries then output zeros); dropout calls and
    masks without rows go through the kernels' SDPA drop-in, which hands them to torch.
    """
    if dropout_p == 0.0 and kernels_can_run(q):
        if key_mask is None:
            return _flash_attention(q, k, v, causal=True)
        if rows is not None:
            return _flash_attention(q, k, v, causal=True, check_rows=False, **rows._asdict())
    mask = visibility_mask(q.shape[2], key_mask, k.shape[2], q.device)
    return _sdpa(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def attention_probs(q: torch.Tensor, k: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The attention probabilities ``softmax(q k^T / sqrt(D))`` ``(B, H, Tq, Tk)``, computed explicitly."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = visibility_mask(q.shape[2], key_mask, k.shape[2], q.device)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with GPT-2's packed ``[q | k | v]`` projection."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        key_mask: Optional[torch.Tensor] = None,
        cache: Optional[KVCache] = None,
        layer: int = 0,
        return_attention: bool = False,
        rows: Optional[PaddedRows] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        batch, seq, width = x.shape
        heads = self.c_attn(x).view(batch, seq, 3, self.n_head, width // self.n_head)
        q, k, v = heads.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, D)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        probs = None
        if return_attention:
            probs = attention_probs(q, k, key_mask)
            y = torch.matmul(probs, v)
        else:
            y = attend(q, k, v, key_mask, self.dropout if self.training else 0.0, rows)
        y = y.transpose(1, 2).reshape(batch, seq, width)
        return self.resid_dropout(self.c_proj(y)), probs


# -- the transformer block -------------------------------------------------------------
class MLP(nn.Module):
    """``n_embd -> 4 n_embd -> n_embd`` with GPT-2's tanh-approximated GELU."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        key_mask: Optional[torch.Tensor] = None,
        cache: Optional[KVCache] = None,
        layer: int = 0,
        return_attention: bool = False,
        rows: Optional[PaddedRows] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        attn_out, probs = self.attn(self.ln_1(x), key_mask, cache, layer, return_attention, rows)
        x = x + attn_out
        x = x + self.mlp(self.ln_2(x))
        return x, probs


# -- the model ---------------------------------------------------------------------------
class GPT(nn.Module):
    """GPT-2. Parameter names follow Hugging Face's ``GPT2LMHeadModel`` (``transformer.h.0.attn.c_attn``...).

    ``model(idx)`` and ``model(idx, targets)`` return a :class:`GPTOutput` ``(logits, loss,
    attentions)``. ``targets`` use ``-100`` for positions to ignore and the loss is the mean over
    the others. With the fused loss (``fused_loss``: ``None`` = on CUDA, ``True``/``False``
    forces it; ``fastllm.kernels.linear_cross_entropy``, its PyTorch reference off CUDA), the
    logits are never materialised and ``logits`` is ``None``. ``return_attention=True`` fills
    ``attentions`` with the per-layer attention probabilities (explicit reference path).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.fused_loss: Optional[bool] = None
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as GPT-2
        self.apply(self._init_weights)
        residual_std = INIT_STD / math.sqrt(2 * config.n_layer)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # -- sizes ---------------------------------------------------------------------
    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; ``non_embedding`` leaves out the position embeddings (the token
        embeddings stay: they are also the output layer)."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.transformer.wpe.weight.numel()
        return total

    def resize_token_embeddings(self, new_vocab_size: int) -> None:
        """Grow or shrink the vocabulary, keeping the rows of surviving ids; new rows are drawn
        like GPT-2's initialisation and the tied output layer follows."""
        if isinstance(new_vocab_size, bool) or not isinstance(new_vocab_size, int) or new_vocab_size < 1:
            raise ValueError(f"new_vocab_size must be a positive int, got {new_vocab_size!r}")
        old = self.transformer.wte.weight
        new = nn.Embedding(new_vocab_size, self.config.n_embd, device=old.device, dtype=old.dtype)
        nn.init.normal_(new.weight, mean=0.0, std=INIT_STD)
        keep = min(new_vocab_size, old.shape[0])
        with torch.no_grad():
            new.weight[:keep] = old[:keep]
        self.transformer.wte = new
        self.lm_head = nn.Linear(self.config.n_embd, new_vocab_size, bias=False, device=old.device, dtype=old.dtype)
        self.lm_head.weight = new.weight
        self.config.vocab_size = new_vocab_size

    # -- forward -------------------------------------------------------------------
    def hidden_states(
        self,
        idx: torch.Tensor,
        kv_cache: Optional[KVCache] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        return_attention: bool = False,
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The final-LayerNorm outputs ``(batch, seq, n_embd)`` and, if asked, the attention maps.

        ``kv_cache``: keys/values of earlier positions; ``idx`` continues them and is appended.
        ``attention_mask`` ``(batch, past + seq)``: 1 for real tokens, 0 for (left) padding;
        positions then count real tokens only, as in ``transformers``.
        """
        idx = self._check_idx(idx)
        batch, seq = idx.shape
        past = kv_cache.length if kv_cache is not None else 0
        if past + seq > self.config.block_size:
            raise ValueError(
                f"sequence of {past + seq} tokens is longer than the context of {self.config.block_size}"
            )
        if attention_mask is not None and tuple(attention_mask.shape) != (batch, past + seq):
            raise ValueError(
                f"attention_mask must have shape {(batch, past + seq)}, got {tuple(attention_mask.shape)}"
            )
        if position_ids is None:
            if attention_mask is None:
                position_ids = torch.arange(past, past + seq, device=idx.device)[None]
            else:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
        # without padding, attention takes the mask-free kernel path; with it, the kernels'
        # padded rows, found once for every layer
        key_mask = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.bool()
        rows = None if key_mask is None else padded_rows(key_mask, seq)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(position_ids))
        maps: List[torch.Tensor] = []
        for layer, block in enumerate(self.transformer.h):
            x, probs = block(x, key_mask, kv_cache, layer, return_attention, rows)
            if probs is not None:
                maps.append(probs)
        if kv_cache is not None:
            kv_cache.advance(seq)
        return self.transformer.ln_f(x), maps

    def forward(
        self,
        idx: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        return_attention: bool = False,
        *,
        kv_cache: Optional[KVCache] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
    ) -> GPTOutput:
        hidden, maps = self.hidden_states(idx, kv_cache, attention_mask, position_ids, return_attention)
        attentions = maps if return_attention else None
        if targets is None:
            return GPTOutput(self.lm_head(hidden), None, attentions)
        if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
            raise ValueError(
                f"targets must be a tensor shaped like idx {tuple(idx.shape)}, got "
                f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}"
            )
        if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.dtype.is_complex:
            raise TypeError(f"targets must hold integer token ids (or -100 to ignore), got dtype {targets.dtype}")
        flat_hidden = hidden.reshape(-1, hidden.shape[-1])
        flat_targets = targets.reshape(-1).long()
        if self.uses_fused_loss(hidden):
            loss = _linear_cross_entropy(flat_hidden, self.lm_head.weight, flat_targets, ignore_index=-100)
            return GPTOutput(None, loss, attentions)
        logits = self.lm_head(hidden)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat_targets, ignore_index=-100)
        return GPTOutput(logits, loss, attentions)

    def uses_fused_loss(self, hidden: torch.Tensor) -> bool:
        """Whether the loss goes through ``fastllm.kernels.linear_cross_entropy`` (see ``fused_loss``)."""
        if self.fused_loss is None:
            return hidden.is_cuda
        return bool(self.fused_loss)

    def _check_idx(self, idx: torch.Tensor) -> torch.Tensor:
        if not isinstance(idx, torch.Tensor):
            raise TypeError(f"idx must be a torch.Tensor of token ids, got {type(idx).__name__}")
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, seq), got {tuple(idx.shape)}")
        if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.dtype.is_complex:
            raise TypeError(f"idx must hold integer token ids, got dtype {idx.dtype}")
        if idx.shape[0] == 0 or idx.shape[1] == 0:
            raise ValueError("idx is empty: at least one token is needed")
        # out-of-range ids would be a device-side assert on CUDA; skipped while torch.compile traces
        if not torch.compiler.is_compiling() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            raise ValueError(
                f"token ids must be in [0, {self.config.vocab_size}), got range "
                f"[{int(idx.min())}, {int(idx.max())}]"
            )
        return idx

    # -- checkpoints ---------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path, dtype: Optional[torch.dtype] = None, device=None) -> "GPT":
        """Load a GPT-2 checkpoint directory in Hugging Face's layout (``config.json`` +
        ``model.safetensors`` or ``pytorch_model.bin``), or a hub name when ``huggingface_hub``
        is installed and online. Returns the model in eval mode (float32 unless ``dtype``)."""
        config, state = hf_checkpoint.read_checkpoint(name_or_path)
        with torch.device("meta"):
            model = cls(config)
        hf_checkpoint.check_against(config, state, model.state_dict())
        state = {k: v.to(dtype=dtype or torch.float32) for k, v in state.items()}
        state["lm_head.weight"] = state["transformer.wte.weight"]
        model.load_state_dict(state, assign=True)
        model.lm_head.weight = model.transformer.wte.weight  # assign=True unties them
        model.eval()
        return model.to(device) if device is not None else model

    def save_pretrained(self, directory, tokenizer=None, safe_serialization: bool = True):
        """Write the checkpoint in Hugging Face's layout (``transformers`` can load it);
        ``tokenizer.json`` too when a :class:`fastllm.Tokenizer` is given.

        A model built with ``bias=False`` is stored with zero biases, which computes the same."""
        state = self.state_dict()
        if not self.config.bias:
            with torch.device("meta"):
                full = type(self)(GPTConfig.from_dict({**self.config.to_dict(), "bias": True})).state_dict()
            dtype = self.transformer.wte.weight.dtype
            for key, value in full.items():
                state.setdefault(key, torch.zeros(value.shape, dtype=dtype))
        return hf_checkpoint.write_checkpoint(
            directory, self.config, state, tokenizer=tokenizer, safe_serialization=safe_serialization
        )

    # -- inference -----------------------------------------------------------------
    def new_kv_cache(self, batch: int, max_len: int) -> KVCache:
        """An empty cache for ``batch`` sequences of up to ``max_len`` positions, on the model's device."""
        return KVCache.for_model(self, batch, max_len)

    def generate(self, input_ids, max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None, **kwargs):
        """Continue ``input_ids``; see :func:`fastllm.model.generate.generate` for every option."""
        return _generate(self, input_ids, max_new_tokens, temperature, top_k, top_p, **kwargs)
