"""The run that profile-guided optimisation learns the Rust core's hot paths from.

    python tools/pgo_workload.py [--quick]

`tools/build_pgo.py` runs it with a build of the core instrumented to count branches and calls;
the release build then lays out and inlines code for what it counted. Code the run never reaches
counts as cold and is optimised for size, so the run calls every part of the core a user leans
on: encoding through each built-in scanner and each open model's pattern (lists, numpy, batches
of lines and of documents, special tokens), `tokenizer.json` pipelines, decoding, training.

Text: this repository's own prose and code, plus `multilingual.txt` and `tinyshakespeare.txt`
from the shared data folder when it is there (`FASTLLM_SHARED_DATA`, or ../shared/data). The
vocabularies: gpt2, cl100k_base and o200k_base from that folder, or without it one trained here
on the same text (every code path still runs; the branch statistics are those of a smaller
vocabulary). None of it is the benchmarks' text (`bench-data/`), so those measure held-out text.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastllm.tokenizer import Tokenizer  # noqa: E402
from fastllm.tokenizer.pipeline import AddedToken, ByteLevel, Digits, Pipeline, Split  # noqa: E402
from tests.support.open_model_patterns import (  # noqa: E402
    DEEPSEEK_V3_CJK,
    DEEPSEEK_V3_DIGITS,
    DEEPSEEK_V3_WORDS,
    OPEN_PATTERNS,
)

SPECIAL = "<|endoftext|>"
VOCAB_FILES = {"gpt2": "gpt2.tiktoken", "cl100k": "cl100k_base.tiktoken", "o200k": "o200k_base.tiktoken"}


def shared_data(use: bool) -> Path | None:
    """The shared data folder, if `use` and it is there."""
    if not use:
        return None
    for candidate in (os.environ.get("FASTLLM_SHARED_DATA", ""), str(ROOT.parent / "shared" / "data")):
        if candidate and Path(candidate, "cl100k_base.tiktoken").is_file():
            return Path(candidate)
    return None


def repo_text(suffixes: tuple[str, ...], limit: int) -> str:
    """Up to `limit` characters of the repository's own files with these suffixes."""
    parts, size = [], 0
    for folder in ("python", "rust", "benches", "tests", "docs", "tools", "."):
        base = ROOT / folder
        files = sorted(base.rglob("*") if folder != "." else base.glob("*"))
        for path in files:
            if path.suffix in suffixes and path.is_file() and "/." not in str(path.relative_to(ROOT)):
                text = path.read_text(encoding="utf-8", errors="replace")
                parts.append(text)
                size += len(text)
                if size >= limit:
                    return "\n".join(parts)[:limit]
    return "\n".join(parts)


def corpora(shared: Path | None, scale: int) -> dict[str, str]:
    texts = {
        "prose": repo_text((".md", ".txt", ".rst"), 400_000 * scale),
        "code": repo_text((".py", ".rs", ".sh", ".toml"), 400_000 * scale),
    }
    if shared is not None:
        for name, file in (("multilingual", "multilingual.txt"), ("shakespeare", "tinyshakespeare.txt")):
            path = shared / file
            if path.is_file():
                texts[name] = path.read_text(encoding="utf-8")[: 500_000 * scale]
    return texts


def tokenizers(shared: Path | None, texts: dict[str, str]) -> dict[str, Tokenizer]:
    """Name -> tokenizer: the three built-in scanners, then each open model's pattern over the
    ranks it is paired with in the tests."""
    if shared is not None:
        ranks = {name: shared / file for name, file in VOCAB_FILES.items()}
        made = {}
        for name, path in ranks.items():
            plain = Tokenizer.from_tiktoken(path, name)
            made[name] = plain.with_special_tokens({SPECIAL: plain.n_vocab})
        tokens = {name: made[name].mergeable_tokens() for name in ("cl100k", "o200k")}
        for pattern in OPEN_PATTERNS:
            base = tokens["o200k" if pattern.vocab.startswith("o200k") else "cl100k"]
            made[pattern.name] = Tokenizer(base, {}, pattern.regex)
        return made
    trained = Tokenizer.train(iter(texts.values()), 4096, pattern="cl100k", special_tokens=[SPECIAL])
    made = {"cl100k": trained}
    tokens = trained.mergeable_tokens()
    for name in ("gpt2", "o200k"):
        made[name] = Tokenizer(tokens, {SPECIAL: len(tokens)}, name)
    for pattern in OPEN_PATTERNS:
        made[pattern.name] = Tokenizer(tokens, {}, pattern.regex)
    return made


def encode_all(tok: Tokenizer, texts: dict[str, str], rounds: int) -> None:
    """Every encoding path over fresh slices of each text (fresh: the piece cache must not answer
    everything, or the profile would say first-seen pieces never happen)."""
    for text in texts.values():
        step = max(1, len(text) // (rounds + 3))
        for r in range(rounds):
            tok.encode_ordinary(text[r * step:(r + 1) * step])
        tok.encode_ordinary_to_numpy(text[rounds * step:(rounds + 1) * step])
        chunk = text[(rounds + 1) * step:(rounds + 2) * step]
        tok.encode(chunk + SPECIAL + chunk[:1000], allowed_special="all")
        tok.encode_to_numpy(chunk[:20_000], allowed_special="all")
        tok.encode_ordinary_batch(chunk.splitlines())
        docs = text[(rounds + 2) * step:]
        tok.encode_ordinary_batch([docs[k:k + 50_000] for k in range(0, len(docs), 50_000)])
        tok.encode_ordinary(text[:5_000])  # a hot slice: the piece cache's hits


def decode_all(tok: Tokenizer, text: str) -> None:
    ids = tok.encode_ordinary(text)
    tok.decode(ids)
    tok.decode_bytes(ids)
    array = tok.encode_ordinary_to_numpy(text)
    tok.decode(array)
    tok.decode_bytes(array)
    tok.decode_batch([ids[k:k + 500] for k in range(0, len(ids), 500)])
    decoder = tok.incremental_decoder()
    for k in range(0, min(len(ids), 20_000), 7):
        decoder.add_many(ids[k:k + 7])
    decoder.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (for the test that keeps this script working)")
    parser.add_argument("--no-shared", action="store_true", help="run as if the shared data folder were absent")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    shared = shared_data(not args.no_shared)
    scale, rounds = (1, 2) if args.quick else (4, 6)
    texts = corpora(shared, 1 if args.quick else scale)
    if args.quick:
        texts = {name: text[:60_000] for name, text in texts.items()}
    made = tokenizers(shared, texts)
    for name, tok in made.items():
        # The built-in scanners carry most users' work: all the text; open models' patterns a part.
        part = texts if name in VOCAB_FILES else {k: v[: len(v) // 4] for k, v in texts.items()}
        encode_all(tok, part, rounds)
    for name in VOCAB_FILES:
        decode_all(made[name], "\n".join(texts.values()))
    with tempfile.TemporaryDirectory() as tmp:
        # tokenizer.json: a written file read back.
        path = Path(tmp, "tokenizer.json")
        made["cl100k"].to_hf_json(path)
        encode_all(Tokenizer.from_hf_json(path), {k: v[: len(v) // 8] for k, v in texts.items()}, 2)
        # A DeepSeek-style pipeline: NFC, Splits of several behaviours, digits, ByteLevel, an added token.
        pipeline = Pipeline(
            normalizer="nfc",
            steps=(
                Split(r"\p{N}{1,3}", "isolated"),
                Split(r"[\r\n]+", "merged_with_previous"),
                Digits(individual=False),
                ByteLevel(add_prefix_space=False, use_regex=True),
            ),
            added_tokens=(AddedToken("<tool>", made["cl100k"].n_vocab, special=False, lstrip=True),),
        )
        tok = Tokenizer(made["cl100k"].mergeable_tokens(), {}, "cl100k", pipeline=pipeline)
        encode_all(tok, {k: v[: len(v) // 8] for k, v in texts.items()}, 2)
    # The pipelines the encoder runs in one pass: DeepSeek V3's three Splits, StarCoder's Digits.
    for steps in (
        (Split(DEEPSEEK_V3_DIGITS), Split(DEEPSEEK_V3_CJK), Split(DEEPSEEK_V3_WORDS), ByteLevel(False, False)),
        (Digits(individual=True), ByteLevel(False, True)),
    ):
        tok = Tokenizer(made["cl100k"].mergeable_tokens(), {}, "cl100k", pipeline=Pipeline(steps=steps))
        encode_all(tok, {k: v[: len(v) // 8] for k, v in texts.items()}, 2)
    Tokenizer.train(iter([texts["prose"][: 300_000 if not args.quick else 30_000]]), 2048 if not args.quick else 400, show_progress=False)
    import fastllm._core

    print(f"pgo workload ({fastllm._core.__file__}): {len(made)} tokenizers, {sum(map(len, texts.values())) / 1e6:.1f} M characters "
          f"of {len(texts)} texts, shared data {'used' if shared else 'absent'}, {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
