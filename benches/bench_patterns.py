"""Encode speed of fastllm against tiktoken with open models' split patterns, one thread.

    python benches/bench_patterns.py [--repeats N] [--patterns llama3,qwen2,...] [--json PATH]

Each pattern (tests/support/open_model_patterns.py) is given to both libraries as the
split regex (tiktoken's ``pat_str``) with the ranks of a shared ``.tiktoken`` file
(cl100k_base or o200k_base), and both ``encode_ordinary`` tinyshakespeare and
multilingual. The process is pinned to one core and rayon to one thread; times are
medians of interleaved rounds (``--repeats``, more for calls shorter than 50 ms), so a
change in load hits both alike. Every output is checked equal to tiktoken's. "Cold":
neither library keeps anything between calls (fastllm's piece cache lives within one
call). Also shown: how fastllm splits (``_core.testing.split_engine``: a hand-written
scanner, the compiled matcher, or the backtracking regex engine), and, for comparison,
the built-in cl100k_base and o200k_base patterns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.open_model_patterns import OPEN_PATTERNS, OpenPattern  # noqa: E402

VOCAB_FILES = {"cl100k_base": "cl100k_base.tiktoken", "o200k_base": "o200k_base.tiktoken"}
CORPORA = ("tinyshakespeare.txt", "multilingual.txt")


def shared_data_dir() -> Path:
    for candidate in (os.environ.get("FASTLLM_SHARED_DATA", ""), str(ROOT.parent / "shared" / "data")):
        if candidate and Path(candidate, "cl100k_base.tiktoken").is_file():
            return Path(candidate)
    sys.exit("needs the real vocab files: set FASTLLM_SHARED_DATA to the folder holding cl100k_base.tiktoken")


def interleaved_medians(calls: dict, repeats: int) -> tuple[dict[str, float], dict]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    results: dict = {}
    for _ in range(repeats):
        for name, call in calls.items():
            results[name] = None
            start = time.perf_counter()
            results[name] = call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--patterns", default=",".join(p.name for p in OPEN_PATTERNS) + ",builtin_cl100k,builtin_o200k")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from fastllm import Tokenizer, _core

    data = shared_data_dir()
    corpora = {name: (data / name).read_text(encoding="utf-8") for name in CORPORA}
    ranks = {vocab: load_tiktoken_bpe(str(data / file)) for vocab, file in VOCAB_FILES.items()}
    wanted = args.patterns.split(",")
    rows = []
    header = f"{'pattern':20} {'vocab':12} {'engine':16} {'corpus':18} {'fastllm MB/s':>12} {'tiktoken MB/s':>13}"
    print(f"{header} {'ratio':>6} same")
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
        for corpus, text in corpora.items():
            calls = {"fastllm": partial(ours.encode_ordinary, text), "tiktoken": partial(theirs.encode_ordinary, text)}
            # Calls of a millisecond or two (patterns that match little) need more rounds for a steady median.
            once, _ = interleaved_medians(calls, 1)
            rounds = max(args.repeats, min(201, int(0.5 / max(once.values()))))
            medians, results = interleaved_medians(calls, rounds)
            mb = len(text.encode("utf-8")) / 1e6
            row = {
                "pattern": p.name, "vocab": p.vocab, "engine": engine, "corpus": corpus,
                "fastllm_mb_s": mb / medians["fastllm"], "tiktoken_mb_s": mb / medians["tiktoken"],
                "ratio": medians["tiktoken"] / medians["fastllm"], "same": results["fastllm"] == results["tiktoken"],
            }
            rows.append(row)
            print(
                f"{p.name:20} {p.vocab:12} {engine:16} {corpus:18} {row['fastllm_mb_s']:12.2f} "
                f"{row['tiktoken_mb_s']:13.2f} {row['ratio']:6.2f} {row['same']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
