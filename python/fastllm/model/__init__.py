"""The GPT-2-class model, its Hugging Face checkpoints, and inference (``pip install fastllm[torch]``)."""

from .config import PRESETS, GPTConfig
from .gpt import GPT
from .kv_cache import KVCache

__all__ = ["GPT", "GPTConfig", "KVCache", "PRESETS"]
