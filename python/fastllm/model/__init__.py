"""The GPT-2-class model, its Hugging Face checkpoints, and inference (``pip install fastllm[torch]``)."""

from .attention_maps import attention_maps, save_attention_map
from .config import PRESETS, GPTConfig
from .evaluate import EvalResult, evaluate_text
from .generate import generate
from .gpt import GPT
from .kv_cache import KVCache
from .streaming import stream_generate

__all__ = [
    "GPT",
    "GPTConfig",
    "KVCache",
    "PRESETS",
    "EvalResult",
    "attention_maps",
    "evaluate_text",
    "generate",
    "save_attention_map",
    "stream_generate",
]
