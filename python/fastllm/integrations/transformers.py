"""Hugging Face ``transformers`` models on fastllm's attention kernels and fused loss.

Importing this module registers an attention implementation named ``"fastllm"`` with
transformers (its ``AttentionInterface`` and, for the masks it builds, its
``AttentionMaskInterface``)::

    import fastllm.integrations.transformers  # noqa: F401  (registers "fastllm")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="fastllm")
    model.set_attn_implementation("fastllm")          # or switch a loaded model

and :func:`apply` switches a loaded causal LM to that attention and to fastllm's fused
``linear_cross_entropy`` loss, so the full logits are never built for the loss.

How a call maps onto :func:`fastllm.kernels.flash_attention`: causal or not (the layer's
``is_causal``), ``scaling``, ``softcap`` (Gemma 2), ``sliding_window`` (``sliding_window - 1``
keys back when causal, as transformers' masks; ``sliding_window`` either side when not), GQA/MQA
from the key/value head count. Padding: the ``"fastllm"`` mask function hands the layers the
2-D padding mask (as FlashAttention's does, cut to the keys the queries can reach), which
becomes the kernels' padded rows (:mod:`fastllm.kernels.padding`), found once per forward;
left and right padding and static caches stay on the kernels, where padding queries output
zeros. The Triton kernels run on CUDA, the PyTorch reference on the CPU.

What the kernels do not take runs in PyTorch (:func:`fastllm.kernels.attention_reference.
masked_attention`, or torch SDPA without a soft-cap), with one warning per reason: attention
dropout in training, mask patterns other than causal/bidirectional with or without a sliding
window (packed sequences, chunked attention, image-token overlays: the mask function then
returns transformers' own dense mask), padding that is not one run of tokens per row, and
head dims or dtypes outside the kernels' range. ``output_attentions`` is not supported (the
weights are ``None``, as with ``"sdpa"``).

Tested with transformers 5.24; needs the mask-function interface of transformers 5
(``q_length``/``q_offset``).
"""

from __future__ import annotations

import inspect
import types
import warnings
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

try:
    import transformers
    from transformers import masking_utils
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface, PreTrainedModel
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastllm.integrations.transformers needs Hugging Face transformers >= 5: pip install 'fastllm[transformers]'"
    ) from exc

from fastllm.kernels import flash_attention, linear_cross_entropy
from fastllm.kernels.attention_reference import attention_mask as kernels_mask
from fastllm.kernels.attention_reference import masked_attention, padded_keep_mask
from fastllm.kernels.checks import FLOAT_DTYPES, MAX_HEAD_DIM, MIN_HEAD_DIM, normalize_window
from fastllm.kernels.padding import PaddedRows, padded_rows

if "q_length" not in inspect.signature(masking_utils.sdpa_mask).parameters:  # pragma: no cover
    raise ImportError(
        f"fastllm.integrations.transformers needs transformers >= 5 (mask functions taking q_length and "
        f"q_offset); this is transformers {transformers.__version__}"
    )

NAME = "fastllm"

__all__ = ["NAME", "apply", "attention_forward", "attention_mask_function"]

Offsets = Tuple[Optional[int], Optional[int]]

# -- warnings ---------------------------------------------------------------------------------
_warned: set = set()


def _fallback_warning(reason: str) -> None:
    """Say once per reason that a call leaves the kernels."""
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"fastllm attention: {reason}; these calls run PyTorch attention instead "
                      "(warned once)", stacklevel=3)


# -- the mask function -----------------------------------------------------------------------
def _closure_value(fn: Callable, name: str):
    names = fn.__code__.co_freevars
    return fn.__closure__[names.index(name)].cell_contents if name in names else None


def mask_pattern(mask_function: Callable) -> Optional[Offsets]:
    """The ``(left, right)`` key offsets (``None`` = unbounded) of a transformers mask function
    built from the causal/bidirectional masks and the sliding-window overlays, or ``None`` for
    any other pattern (packed sequences, chunks, or/and overlays of a model's own)."""
    if mask_function is masking_utils.causal_mask_function:
        return (None, 0)
    if mask_function is masking_utils.bidirectional_mask_function:
        return (None, None)
    qualname = getattr(mask_function, "__qualname__", "")
    code = getattr(mask_function, "__code__", None)
    if code is None or mask_function.__closure__ is None:
        return None
    if qualname == "sliding_window_overlay.<locals>.inner_mask":  # kv > q - w
        return (int(_closure_value(mask_function, "sliding_window")) - 1, None)
    if qualname == "sliding_window_bidirectional_overlay.<locals>.inner_mask":  # |q - kv| <= w
        window = int(_closure_value(mask_function, "sliding_window"))
        return (window, window)
    if qualname == "and_masks.<locals>.and_mask":
        left, right = None, None
        for part in _closure_value(mask_function, "mask_functions") or ():
            offsets = mask_pattern(part)
            if offsets is None:
                return None
            left = offsets[0] if left is None else left if offsets[0] is None else min(left, offsets[0])
            right = offsets[1] if right is None else right if offsets[1] is None else min(right, offsets[1])
        return (left, right)
    return None


def attention_mask_function(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset=0,
    kv_offset=0,
    mask_function: Callable = masking_utils.causal_mask_function,
    attention_mask: Optional[torch.Tensor] = None,
    **kwargs,
) -> Optional[torch.Tensor]:
    """The ``"fastllm"`` entry of transformers' ``AttentionMaskInterface``.

    For causal and bidirectional masks, with or without a sliding window, it returns ``None``
    (no padding) or the boolean padding mask ``(batch, width)`` of the keys, ``width = q_offset
    - kv_offset + q_length`` when the query positions matter (keys past the last query, an
    unfilled static cache, are cut off), so that the queries are the last ``q_length``
    positions of it; ``kv_length`` when they do not. The layers turn it into the kernels'
    padded rows. Any other pattern gets transformers' dense boolean mask
    ``(batch, 1, q_length, kv_length)``, which the layers compute in PyTorch.
    """
    offsets = mask_pattern(mask_function)
    if offsets is None or kwargs.get("use_vmap"):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("allow_is_causal_skip", "allow_is_bidirectional_skip")}
        return masking_utils.sdpa_mask(
            batch_size=batch_size, q_length=q_length, kv_length=kv_length, q_offset=q_offset, kv_offset=kv_offset,
            mask_function=mask_function, attention_mask=attention_mask, allow_is_causal_skip=False, **kwargs,
        )
    start = int(kv_offset)
    # when the queries' positions matter, keys after the last query are future or unfilled
    # (a static cache); when they do not (encoders, cross-attention) every key counts
    width = kv_length if offsets == (None, None) else min(kv_length, int(q_offset) - start + q_length)
    if attention_mask is None:
        if width == kv_length:
            return None
        keys = torch.ones((batch_size, width), dtype=torch.bool, device=kwargs.get("device"))
    else:
        keys = attention_mask.bool()
        if keys.shape[-1] < start + width:  # positions past the given mask are not tokens
            keys = F.pad(keys, (0, start + width - keys.shape[-1]), value=False)
        keys = keys[:, start : start + width]
        if width == kv_length and bool(keys.all()):
            return None
    keys._fastllm_offsets = offsets  # the pattern the layers cross-check
    return keys


# -- the attention function ------------------------------------------------------------------
def _window(sliding_window: Optional[int], causal: bool) -> Offsets:
    """transformers' sliding window as key offsets: ``w - 1`` keys back when causal, ``w``
    either side when not (its bidirectional overlay)."""
    if sliding_window is None:
        return normalize_window(None, causal)
    if causal:
        return normalize_window(int(sliding_window) - 1, True)
    return normalize_window((int(sliding_window), int(sliding_window)), False)


def _rows_of(keys: torch.Tensor, q_len: int, offsets: Offsets) -> Optional[PaddedRows]:
    """The padded rows of a 2-D key mask, kept on the mask: every layer of a forward gets the
    same mask, so the rows (and their one synchronisation) are found once."""
    cache = getattr(keys, "_fastllm_rows", None)
    if cache is None:
        cache = {}
        keys._fastllm_rows = cache
    key = (q_len, offsets)
    if key not in cache:
        cache[key] = padded_rows(keys, q_len, causal=False, window=_flash_window(offsets))
    return cache[key]


def _kernel_problem(query: torch.Tensor, key: torch.Tensor) -> Optional[str]:
    """Why the kernels cannot take these tensors, or ``None``."""
    if query.dtype not in FLOAT_DTYPES or key.dtype != query.dtype:
        return f"dtype {query.dtype} is not one the kernels take (float16, bfloat16, float32)"
    if not MIN_HEAD_DIM <= query.shape[-1] <= MAX_HEAD_DIM:
        return f"head_dim {query.shape[-1]} is outside the kernels' [{MIN_HEAD_DIM}, {MAX_HEAD_DIM}]"
    return None


def _torch_attention(query, key, value, keep, bias, scale, softcap, dropout):
    """Attention in PyTorch for the calls the kernels do not take: torch SDPA when there is no
    soft-cap (memory-efficient kernels, dropout), else the explicit reference math."""
    if softcap:
        out, _ = masked_attention(query, key, value, scale, keep, softcap, bias, dropout)
        return out
    mask = bias
    if keep is not None:
        sees = keep.any(-1, keepdim=True)  # rows without any key: all -inf would give NaN
        keep = keep | ~sees
        mask = keep if bias is None else bias.masked_fill(~keep, float("-inf"))
    h, hk = query.shape[1], key.shape[1]
    if hk != h:
        key, value = key.repeat_interleave(h // hk, 1), value.repeat_interleave(h // hk, 1)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scale)
    return out if keep is None else out * sees


def attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    dropout: float = 0.0,
    scaling: Optional[float] = None,
    sliding_window: Optional[int] = None,
    softcap: Optional[float] = None,
    is_causal: Optional[bool] = None,
    **kwargs,
) -> Tuple[torch.Tensor, None]:
    """The ``"fastllm"`` entry of transformers' ``AttentionInterface``: ``query``
    ``(batch, heads, q_len, head_dim)``, ``key``/``value`` ``(batch, kv_heads, kv_len, head_dim)``;
    returns ``((batch, q_len, heads, head_dim), None)``."""
    if kwargs.get("position_bias") is not None:
        raise ValueError("the fastllm attention does not take a position_bias (T5-style relative attention): use "
                         "attn_implementation='sdpa' or 'eager' for this model")
    causal = bool(is_causal if is_causal is not None else getattr(module, "is_causal", True))
    offsets = _window(sliding_window, causal)
    scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
    cap = float(softcap) if softcap else 0.0
    rows, keep, bias = None, None, None
    if attention_mask is not None and attention_mask.dim() == 2:
        # a padding mask whose last q_len positions are the queries (see attention_mask_function)
        offsets = getattr(attention_mask, "_fastllm_offsets", offsets)
        width = attention_mask.shape[-1]
        if width > key.shape[2]:
            raise ValueError(f"the padding mask covers {width} keys but there are {key.shape[2]}")
        key, value = key[:, :, :width], value[:, :, :width]
        rows = _rows_of(attention_mask, query.shape[2], offsets)
        if rows is None:
            _fallback_warning("a padding mask that is not one run of tokens per row")
            pattern = kernels_mask(query.shape[2], width, False, _flash_window(offsets))
            keep = pattern[None, None] & attention_mask.bool()[:, None, None, :]
    elif attention_mask is not None:  # transformers' dense mask: a pattern the kernels do not take
        _fallback_warning("a mask pattern other than causal or bidirectional with a sliding window")
        if attention_mask.dtype == torch.bool:
            keep = attention_mask
        else:
            bias = attention_mask
    problem = _kernel_problem(query, key)
    if problem is not None:
        _fallback_warning(problem)
    if dropout and module.training:
        _fallback_warning("attention dropout in training (the kernels have none)")
    else:
        dropout = 0.0
    if keep is not None or bias is not None or problem is not None or dropout:
        if keep is None and bias is None:
            keep = (padded_keep_mask(query.shape[2], key.shape[2], offsets, tuple(rows)) if rows is not None
                    else kernels_mask(query.shape[2], key.shape[2], False, _flash_window(offsets)))
        out = _torch_attention(query, key, value, keep, bias, scale, cap, dropout)
    else:
        padding = {} if rows is None else dict(rows._asdict(), check_rows=False)
        out = flash_attention(query, key, value, causal=False, scale=scale, window=_flash_window(offsets),
                              softcap=cap or None, **padding)
    return out.transpose(1, 2).contiguous(), None


def _flash_window(offsets: Offsets) -> Tuple[int, int]:
    """``(left, right)`` offsets as :func:`flash_attention`'s window argument (``-1`` unbounded)."""
    left, right = offsets
    return (-1 if left is None else left, -1 if right is None else right)


AttentionInterface.register(NAME, attention_forward)
AttentionMaskInterface.register(NAME, attention_mask_function)


# -- apply: attention + fused loss -----------------------------------------------------------
# Causal LM classes whose forward is ``logits = lm_head(slice(hidden))``, an optional final
# logit soft-cap (config.final_logit_softcapping), then transformers' ForCausalLM loss.
FUSED_LOSS_CLASSES = frozenset({
    "transformers.models.llama.modeling_llama.LlamaForCausalLM",
    "transformers.models.mistral.modeling_mistral.MistralForCausalLM",
    "transformers.models.qwen2.modeling_qwen2.Qwen2ForCausalLM",
    "transformers.models.qwen3.modeling_qwen3.Qwen3ForCausalLM",
    "transformers.models.gemma.modeling_gemma.GemmaForCausalLM",
    "transformers.models.gemma2.modeling_gemma2.Gemma2ForCausalLM",
    "transformers.models.gemma3.modeling_gemma3.Gemma3ForCausalLM",
    "transformers.models.phi3.modeling_phi3.Phi3ForCausalLM",
    "transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel",
    "transformers.models.olmo2.modeling_olmo2.Olmo2ForCausalLM",
    "transformers.models.starcoder2.modeling_starcoder2.Starcoder2ForCausalLM",
})


def _family(model: torch.nn.Module) -> Optional[type]:
    """The supported class ``model`` is, when its forward is that class's own."""
    for cls in type(model).__mro__:
        if f"{cls.__module__}.{cls.__qualname__}" in FUSED_LOSS_CLASSES:
            return cls if type(model).forward is cls.forward else None
    return None


def _head_name(model: torch.nn.Module) -> str:
    head = model.get_output_embeddings()
    for name, child in model.named_children():
        if child is head:
            return name
    raise ValueError(f"{type(model).__name__}: its output embeddings are not a direct submodule")


def _check_fused_loss(model: torch.nn.Module) -> None:
    cls = _family(model)
    if cls is None:
        supported = ", ".join(sorted(name.rsplit(".", 1)[1] for name in FUSED_LOSS_CLASSES))
        raise ValueError(
            f"apply(fused_loss=True): {type(model).__name__} is not a causal LM whose forward fastllm knows "
            f"(a linear lm_head, an optional final logit soft-cap, transformers' causal-LM loss); supported: "
            f"{supported}. Use fused_loss=False for the attention alone."
        )
    head = model.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.weight.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"apply(fused_loss=True): {type(model).__name__}'s lm_head is {type(head).__name__} with "
            f"{getattr(getattr(head, 'weight', None), 'dtype', None)} weights; the fused loss needs a float nn.Linear"
        )
    loss_type = getattr(model, "loss_type", None) or "ForCausalLM"
    if loss_type != "ForCausalLM" or "_loss_function" in vars(model):
        raise ValueError(f"apply(fused_loss=True): {type(model).__name__} has a custom loss ({loss_type!r}); "
                         "the fused loss replaces only transformers' causal-LM loss")


class _HiddenStates(torch.nn.Module):
    """Stands in for the LM head during a forward with labels: records its input (the hidden
    states) and returns the real logits only when they are wanted, else an empty tensor."""

    def __init__(self, head: torch.nn.Module, logits: bool) -> None:
        super().__init__()
        object.__setattr__(self, "head", head)  # not a submodule: nothing is re-registered
        self.logits = logits
        self.hidden: Optional[torch.Tensor] = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        self.hidden = hidden
        return self.head(hidden) if self.logits else hidden.new_empty(*hidden.shape[:-1], 0)


def fused_loss_forward(self, *args, **kwargs):
    """The forward :func:`apply` installs: without labels the class's own; with labels the
    same model run, the LM head's input kept, and the loss from :func:`linear_cross_entropy`
    (transformers' causal-LM loss: labels shifted left, ``ignore_index`` (-100) ignored, summed
    over ``num_items_in_batch`` when given, ``shift_labels`` used as given, Gemma's final logit
    soft-cap). ``logits`` is ``None`` in training mode (they are never built), the real logits
    in eval mode."""
    cls = _family(self)
    forward = cls.forward if cls is not None else type(self).forward
    bound = inspect.signature(forward).bind(self, *args, **kwargs)
    labels = bound.arguments.get("labels")
    if labels is None:
        return forward(self, *args, **kwargs)
    bound.arguments["labels"] = None
    extra = bound.arguments.pop("kwargs", {}) if "kwargs" in bound.arguments else {}
    call_kwargs = {**{k: v for k, v in bound.arguments.items() if k != "self"}, **extra}
    return_dict = call_kwargs.pop("return_dict", None)
    if return_dict is None:
        return_dict = getattr(self.config, "return_dict", True)

    name = _head_name(self)
    head = getattr(self, name)
    capture = _HiddenStates(head, logits=not self.training)
    setattr(self, name, capture)
    try:
        out = forward(self, **call_kwargs, return_dict=True)
    finally:
        setattr(self, name, head)
    hidden = capture.hidden

    ignore_index = call_kwargs.get("ignore_index", -100)
    shift_labels = call_kwargs.get("shift_labels")
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    weight = head.weight
    hidden = hidden.reshape(-1, hidden.shape[-1]).to(weight.device)
    targets = shift_labels.reshape(-1).to(weight.device)
    if targets.shape[0] != hidden.shape[0]:
        raise ValueError(f"labels give {targets.shape[0]} targets for {hidden.shape[0]} positions of hidden states")
    num_items = call_kwargs.get("num_items_in_batch")
    softcap = getattr(self.config, "final_logit_softcapping", None)
    loss = linear_cross_entropy(
        hidden, weight, targets.long(), bias=head.bias, ignore_index=ignore_index,
        reduction="mean" if num_items is None else "sum", softcap=softcap,
    )
    if num_items is not None:
        loss = loss / (num_items.to(loss.device) if torch.is_tensor(num_items) else num_items)
    fields = {k: v for k, v in out.items() if k not in ("loss", "logits")}
    result = type(out)(loss=loss, logits=out.logits if capture.logits else None, **fields)
    return result if return_dict else result.to_tuple()


def apply(model: PreTrainedModel, attention: bool = True, fused_loss: bool = True) -> PreTrainedModel:
    """Switch a loaded transformers causal LM to fastllm: ``attention`` sets
    ``attn_implementation="fastllm"``; ``fused_loss`` computes the loss, when ``labels`` are
    given, with fastllm's ``linear_cross_entropy`` from the hidden states (see
    :func:`fused_loss_forward`), for the families in :data:`FUSED_LOSS_CLASSES` (others are
    refused with a ValueError). ``False`` leaves that part as it is. Returns ``model``."""
    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"apply needs a transformers PreTrainedModel, got {type(model).__name__}")
    if fused_loss:
        _check_fused_loss(model)
    if attention:
        model.set_attn_implementation(NAME)
        if model.config._attn_implementation != NAME:
            raise ValueError(f"{type(model).__name__} does not let its attention implementation be set "
                             f"(it stays {model.config._attn_implementation!r})")
    if fused_loss:
        model.forward = types.MethodType(fused_loss_forward, model)
    return model
