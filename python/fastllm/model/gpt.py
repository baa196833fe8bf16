"""``GPT``: a GPT-2-style decoder (learned positions, pre-LayerNorm blocks, tied embeddings)."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .block import Block
from .config import GPTConfig
from .kv_cache import KVCache

try:
    from fastllm.kernels import linear_cross_entropy as _linear_cross_entropy
except ImportError:  # the fused loss has not landed in fastllm.kernels
    _linear_cross_entropy = None

INIT_STD = 0.02


class GPT(nn.Module):
    """GPT-2. Parameter names follow Hugging Face's ``GPT2LMHeadModel`` (``transformer.h.0.attn.c_attn``...).

    ``model(idx)`` returns logits ``(batch, seq, vocab)``; ``model(idx, targets)`` returns
    ``(logits, loss)`` where ``targets`` use ``-100`` for positions to ignore and the loss is the
    mean over the others. With the fused loss (``fused_loss``: ``None`` = on CUDA when the kernels
    provide ``linear_cross_entropy``), the logits are never materialised and ``None`` is
    returned in their place. ``return_attention=True`` appends the per-layer attention
    probabilities ``(batch, heads, seq, keys)`` (explicit reference path) to the result.
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
        # without padding, attention takes the mask-free (kernel) path
        key_mask = None if attention_mask is None or bool(attention_mask.all()) else attention_mask.bool()
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(position_ids))
        maps: List[torch.Tensor] = []
        for layer, block in enumerate(self.transformer.h):
            x, probs = block(x, key_mask, kv_cache, layer, return_attention)
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
    ) -> Union[torch.Tensor, tuple]:
        hidden, maps = self.hidden_states(idx, kv_cache, attention_mask, position_ids, return_attention)
        extra = (maps,) if return_attention else ()
        if targets is None:
            logits = self.lm_head(hidden)
            return (logits, *extra) if return_attention else logits
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
            return (None, loss, *extra)
        logits = self.lm_head(hidden)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat_targets, ignore_index=-100)
        return (logits, loss, *extra)

    def uses_fused_loss(self, hidden: torch.Tensor) -> bool:
        """Whether the loss goes through ``fastllm.kernels.linear_cross_entropy`` (see ``fused_loss``)."""
        if self.fused_loss is None:
            return _linear_cross_entropy is not None and hidden.is_cuda
        if self.fused_loss and _linear_cross_entropy is None:
            raise RuntimeError("fused_loss=True but fastllm.kernels has no linear_cross_entropy")
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
        from .hf_checkpoint import load

        return load(name_or_path, dtype=dtype, device=device)

    def save_pretrained(self, directory, tokenizer=None, safe_serialization: bool = True):
        """Write the checkpoint in Hugging Face's layout (``transformers`` can load it);
        ``tokenizer.json`` too when a :class:`fastllm.Tokenizer` is given."""
        from .hf_checkpoint import save

        return save(self, directory, tokenizer=tokenizer, safe_serialization=safe_serialization)

    # -- inference -----------------------------------------------------------------
    def generate(self, input_ids, max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None, **kwargs):
        """Continue ``input_ids``; see :func:`fastllm.model.generate.generate` for every option."""
        from .generate import generate

        return generate(self, input_ids, max_new_tokens, temperature, top_k, top_p, **kwargs)
