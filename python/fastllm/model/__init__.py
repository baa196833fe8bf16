"""The GPT-2-class model, its Hugging Face checkpoints, and inference (``pip install fastllm[torch]``).

``config``: ``GPTConfig`` and presets; ``gpt``: the model (cache, attention, blocks); ``generate``:
sampling, stopping and streaming; ``hf_checkpoint``: HF files <-> config + state dict;
``evaluate``: loss, perplexity, bits per byte; ``visualize``: attention maps (PNG), the HTML report of
a prompt and the atlas of a dataset.
"""

from .config import PRESETS, GPTConfig
from .evaluate import EvalResult, evaluate_text
from .generate import generate, stream_generate
from .gpt import GPT, GPTOutput, KVCache
from .visualize import attention_maps, save_attention_map

__all__ = [
    "GPT",
    "GPTConfig",
    "GPTOutput",
    "KVCache",
    "PRESETS",
    "EvalResult",
    "attention_maps",
    "evaluate_text",
    "generate",
    "save_attention_map",
    "stream_generate",
]
