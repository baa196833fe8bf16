"""The split patterns of open models, exactly as their tokenizers define them.

Each row: a name, the regex (byte for byte as the model's tokenizer has it), the
tiktoken vocabulary the tests and benches pair it with (the model's own ranks are
not in the shared data; cl100k_base for the cl100k-style patterns, o200k_base for
the o200k-style ones), and where the regex comes from.
"""

from __future__ import annotations

from typing import NamedTuple


class OpenPattern(NamedTuple):
    name: str
    regex: str
    vocab: str  # encoding whose ranks the tests use with it
    source: str


LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
O200K = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TEKKEN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# DeepSeek V3's tokenizer.json pre-tokenizer is a Sequence of three Isolated splits:
# \p{N}{1,3}, then [一-龥぀-ゟ゠-ヿ]+, then this regex (its \r and \n are the raw characters
# in the JSON string). On its own, as a tiktoken pat_str, it is a single regex like the others.
DEEPSEEK_V3_WORDS = (
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
)
DEEPSEEK_V3_DIGITS = r"\p{N}{1,3}"
DEEPSEEK_V3_CJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"  # [一-龥぀-ゟ゠-ヿ]+ in the file

OPEN_PATTERNS: tuple[OpenPattern, ...] = (
    OpenPattern(
        "llama3", LLAMA3, "cl100k_base",
        "meta-llama/llama-models models/llama3/tokenizer.py pat_str; Meta-Llama-3-8B tokenizer.json Split regex",
    ),
    OpenPattern(
        "qwen2", QWEN2, "cl100k_base",
        "transformers models/qwen2/tokenization_qwen2.py PRETOKENIZE_REGEX (Qwen2, Qwen2.5, Qwen3 tokenizer.json)",
    ),
    OpenPattern(
        "llama4", O200K, "o200k_base",
        "meta-llama/llama-models models/llama4/tokenizer.py O200K_PATTERN (= tiktoken's o200k_base pat_str)",
    ),
    OpenPattern(
        "gpt_oss", O200K, "o200k_base",
        "tiktoken_ext/openai_public.py o200k_harmony: pat_str = o200k_base's (openai/gpt-oss gpt_oss/tokenizer.py)",
    ),
    OpenPattern(
        "tekken", TEKKEN, "o200k_base",
        "Mistral tekken.json \"pattern\" (mistral-common; Mistral-Nemo tokenizer.json Split regex)",
    ),
    OpenPattern(
        "deepseek_v3_words", DEEPSEEK_V3_WORDS, "cl100k_base",
        "deepseek-ai/DeepSeek-V3 tokenizer.json, third Split of the pre_tokenizer Sequence",
    ),
    OpenPattern("deepseek_v3_digits", DEEPSEEK_V3_DIGITS, "cl100k_base", "DeepSeek-V3 tokenizer.json, first Split"),
    OpenPattern("deepseek_v3_cjk", DEEPSEEK_V3_CJK, "cl100k_base", "DeepSeek-V3 tokenizer.json, second Split"),
)
BY_NAME = {p.name: p for p in OPEN_PATTERNS}
