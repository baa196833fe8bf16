"""Encode speed of fastllm against tiktoken with open models' split patterns, one thread.

    python benches/bench_patterns.py [--repeats N] [--patterns llama3,qwen2,...] [--json PATH]

Each pattern (tests/support/open_model_patterns.py) is given to both libraries as the
split regex (tiktoken's ``pat_str``) with the ranks of a shared ``.tiktoken`` file
(cl100k_base or o200k_base), and both ``encode_ordinary`` the sub-corpora of
``benches/bench_tokenizer_corpus.py`` (en, latin, zh, ru, code-py; without them,
tinyshakespeare and multilingual from the shared data). The process is pinned to one core and rayon to one thread; speeds are MB per
CPU-second of the process. **Cold** (the headline): each corpus is cut at line ends into
``--repeats`` + 1 slices of about 300 KB; after a warm-up call on the last, round r has both libraries encode
slice r, each from its own fresh ``str``, in an order that alternates, so neither has seen the
text before (fastllm keeps a piece cache across calls); the cold ratio is tiktoken's CPU time
over fastllm's on all the slices together (they differ in language, and so in ratio). **Hot**:
the warm-up slice again, the same string every round; the median of the per-round ratios. Every output is checked equal to tiktoken's. Also shown: how
fastllm splits (``_core.testing.split_engine``: a hand-written scanner, the compiled matcher,
or the backtracking regex engine), and, for comparison, the built-in cl100k_base and
o200k_base patterns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benches.bench_tokenizer import cut, load_subcorpora  # noqa: E402
from tests.support.open_model_patterns import OPEN_PATTERNS, OpenPattern  # noqa: E402

VOCAB_FILES = {"cl100k_base": "cl100k_base.tiktoken", "o200k_base": "o200k_base.tiktoken"}
# The sub-corpora of benches/bench_tokenizer_corpus.py where they are built, else the shared texts.
SUBCORPORA = ["en", "latin", "zh", "ru", "code-py"]
SLICE_BYTES = 300_000


def shared_data_dir() -> Path:
    for candidate in (os.environ.get("FASTLLM_SHARED_DATA", ""), str(ROOT.parent / "shared" / "data")):
        if candidate and Path(candidate, "cl100k_base.tiktoken").is_file():
            return Path(candidate)
    sys.exit("needs the real vocab files: set FASTLLM_SHARED_DATA to the folder holding cl100k_base.tiktoken")


def cold_and_hot(calls: dict, slices: list[bytes], hot_rounds: int) -> tuple[dict, bool]:
    """Per library: median MB per CPU-second cold (slice r in round r) and hot (the last slice
    again); tiktoken's CPU time over fastllm's, cold over all slices, hot the median per round;
    and whether every output equalled tiktoken's."""
    names = list(calls)
    warm = slices[-1].decode("utf-8")
    for call in calls.values():
        call(warm)
    cold: dict[str, list[float]] = {n: [] for n in names}
    hot: dict[str, list[float]] = {n: [] for n in names}
    same = True
    for r, piece in enumerate(slices[:-1]):
        outputs = {}
        for name in names if r % 2 == 0 else reversed(names):
            text = piece.decode("utf-8")  # a fresh str: no shared cached UTF-8 either
            c0 = time.process_time()
            outputs[name] = calls[name](text)
            cold[name].append(max(time.process_time() - c0, 1e-9))
        same = same and outputs["fastllm"] == outputs["tiktoken"]
    for r in range(hot_rounds):
        for name in names if r % 2 == 0 else reversed(names):
            c0 = time.process_time()
            calls[name](warm)
            hot[name].append(max(time.process_time() - c0, 1e-9))
    cold_mb = [len(p) / 1e6 for p in slices[:-1]]
    hot_mb = len(slices[-1]) / 1e6
    result = {
        "cold_mb_s": {n: statistics.median(mb / t for mb, t in zip(cold_mb, cold[n])) for n in names},
        "hot_mb_s": {n: statistics.median(hot_mb / t for t in hot[n]) for n in names},
        # Over the whole corpus: the slices differ in language, and so in ratio.
        "cold_ratio": sum(cold["tiktoken"]) / sum(cold["fastllm"]),
        "hot_ratio": statistics.median(t / f for t, f in zip(hot["tiktoken"], hot["fastllm"])),
    }
    return result, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--patterns", default=",".join(p.name for p in OPEN_PATTERNS) + ",builtin_cl100k,builtin_o200k")
    parser.add_argument("--corpora", default=",".join(SUBCORPORA))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from fastllm import Tokenizer, _core

    data = shared_data_dir()
    corpora, note = load_subcorpora(args.corpora.split(","), data)
    if note:
        print(note)
    ranks = {vocab: load_tiktoken_bpe(str(data / file)) for vocab, file in VOCAB_FILES.items()}
    wanted = args.patterns.split(",")
    rows = []
    print(f"{'pattern':20} {'vocab':12} {'engine':19} {'corpus':8} {'fastllm MB/s':>12} {'tiktoken MB/s':>13} "
          f"{'x tt cold':>9} {'x tt hot':>8} same")
    # For comparison: the built-in patterns, on the scanners these patterns' ones are built like.
    builtins = [
        OpenPattern(f"builtin_{name}", _core.builtin_patterns()[name], f"{name}_base", "tiktoken")
        for name in ("cl100k", "o200k")
    ]
    for p in [*OPEN_PATTERNS, *builtins]:
        if p.name not in wanted:
            continue
        ours = Tokenizer.from_tiktoken(data / VOCAB_FILES[p.vocab], pattern=p.regex, special_tokens={})
        theirs = tiktoken.Encoding(f"ref_{p.name}", pat_str=p.regex, mergeable_ranks=ranks[p.vocab], special_tokens={})
        engine = _core.testing.split_engine(p.regex)
        for corpus, blob in corpora.items():
            calls = {"fastllm": ours.encode_ordinary, "tiktoken": theirs.encode_ordinary}
            slices = cut(blob, args.repeats + 1, SLICE_BYTES)
            measured, same = cold_and_hot(calls, slices, args.repeats)
            row = {
                "pattern": p.name, "vocab": p.vocab, "engine": engine, "corpus": corpus,
                "fastllm_mb_s": measured["cold_mb_s"]["fastllm"], "tiktoken_mb_s": measured["cold_mb_s"]["tiktoken"],
                "ratio": measured["cold_ratio"], "hot_ratio": measured["hot_ratio"],
                "hot_mb_s": measured["hot_mb_s"], "same": same,
            }
            rows.append(row)
            print(
                f"{p.name:20} {p.vocab:12} {engine:19} {corpus:8} {row['fastllm_mb_s']:12.2f} "
                f"{row['tiktoken_mb_s']:13.2f} {row['ratio']:9.2f} {row['hot_ratio']:8.2f} {row['same']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
