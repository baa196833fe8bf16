"""Encode speed of a tokenizer.json that merges by its merge list (files converted from
tiktoken ranks: Llama 3's, GPT-OSS's), one thread.

    python benches/bench_merge_lists.py [--vocab cl100k_base] [--repeats N]

Builds, with ``tokenizers``, the file transformers' ``TikTokenConverter`` would write for a
shared ``.tiktoken`` vocabulary (every split of each token listed as a merge;
``tests/support/merge_lists.py``) with Llama 3's split, and times on the sub-corpora of
``benches/bench_tokenizer_corpus.py``: fastllm reading that file (merging by the list,
``rust/src/bpe/listed_merges.rs``), fastllm with the same ranks and pattern merging by rank
(the ``.tiktoken`` file), tiktoken with both, and ``tokenizers`` reading the file (``encode``
of the slice, as ``benches/bench_tokenizer.py`` calls it). Cold: each round a new slice of ~300 KB
that no library has seen, median MB per CPU-second; fastllm's ids are checked equal to
``tokenizers``'. Also the time each library takes to load the file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benches.bench_patterns import shared_data_dir  # noqa: E402
from benches.bench_tokenizer import cut, load_subcorpora  # noqa: E402
from tests.support.merge_lists import converter_merges  # noqa: E402

# Llama 3's split regex as its tokenizer.json spells it (Oniguruma).
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SUBCORPORA = ["en", "latin", "zh", "ru", "code-py"]
SLICE_BYTES = 300_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", default="cl100k_base", choices=["cl100k_base", "o200k_base"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import tiktoken
    import tokenizers
    from tiktoken.load import load_tiktoken_bpe
    from tokenizers import Regex, decoders, models
    from tokenizers import pre_tokenizers as pt

    from fastllm import Tokenizer
    from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text
    from fastllm.tokenizer.formats.oniguruma import from_oniguruma

    vocab_file = shared_data_dir() / f"{args.vocab}.tiktoken"
    by_rank = Tokenizer.from_tiktoken(vocab_file, pattern=from_oniguruma(LLAMA3))
    tokens = by_rank.mergeable_tokens()
    merges = converter_merges(tokens)
    built = tokenizers.Tokenizer(
        models.BPE(
            {bytes_to_text(t): r for r, t in enumerate(tokens)},
            [(bytes_to_text(a), bytes_to_text(b)) for a, b in merges],
            ignore_merges=True,
        )
    )
    built.pre_tokenizer = pt.Sequence([pt.Split(Regex(LLAMA3), "isolated"), pt.ByteLevel(add_prefix_space=False, use_regex=False)])
    built.decoder = decoders.ByteLevel()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "tokenizer.json")
        built.save(str(path))
        loads = {"fastllm": [], "tokenizers": []}
        for _ in range(3):
            start = time.perf_counter()
            listed = Tokenizer.from_hf_json(path)
            loads["fastllm"].append(time.perf_counter() - start)
            start = time.perf_counter()
            hf = tokenizers.Tokenizer.from_file(str(path))
            loads["tokenizers"].append(time.perf_counter() - start)
    assert listed.merges() is not None
    ref = tiktoken.Encoding("llama3", pat_str=LLAMA3, mergeable_ranks=load_tiktoken_bpe(str(vocab_file)), special_tokens={})
    print(f"{args.vocab}: {len(merges)} merges for {len(tokens)} tokens; load (median of 3): "
          + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in loads.items()))
    calls = {
        "fastllm, merge list": listed.encode_ordinary,
        "fastllm, by rank": by_rank.encode_ordinary,
        "tiktoken": ref.encode_ordinary,
        "tokenizers": lambda text: hf.encode(text, add_special_tokens=False).ids,
    }
    print("| input | " + " | ".join(calls) + " | merge list / by rank | merge list / tiktoken |")
    print("| --- |" + " ---: |" * (len(calls) + 2))
    corpora, note = load_subcorpora(SUBCORPORA, shared_data_dir())
    if note:
        print(note)
    for name, data in corpora.items():
        slices = cut(data, args.repeats + 1, SLICE_BYTES)
        speeds: dict[str, list[float]] = {k: [] for k in calls}
        calls["fastllm, merge list"](slices[-1].decode())
        for r in range(args.repeats):
            for label, call in calls.items():
                text = slices[r].decode()  # a new str for each library
                start = time.process_time()
                call(text)
                speeds[label].append(len(slices[r]) / 1e6 / (time.process_time() - start))
            text = slices[r].decode()
            assert listed.encode_ordinary(text) == calls["tokenizers"](text), f"{name}: ids differ from tokenizers'"
        med = {k: statistics.median(v) for k, v in speeds.items()}
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in med.values())
              + f" | {med['fastllm, merge list'] / med['fastllm, by rank']:.2f}"
              + f" | {med['fastllm, merge list'] / med['tiktoken']:.2f} |")


if __name__ == "__main__":
    main()
