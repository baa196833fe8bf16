"""Tokenizer encode throughput: fastllm against tiktoken and HF tokenizers, in the same run.

    python benches/bench_tokenizer.py [--quick] [--json PATH] [--repeats N] [--corpus-mb MB]
                                      [--encodings gpt2,cl100k_base,o200k_base] [--train]

All three tokenizers are built from the same ``.tiktoken`` files (``../shared/data`` or
``$FASTLLM_SHARED_DATA``); HF's from fastllm's ``tokenizer.json`` export. Every fastllm
output is compared with tiktoken's (the ``same`` column). Sections:

* ``single``: ``encode_ordinary`` of a whole corpus on one thread;
* ``batch``: the corpus split into documents (blank-line separated), all cores;
* ``lines``: many short documents (one line each), all cores;
* ``worst``: 1 MB without whitespace (``"^" * 10**6``, ``"a" * 10**6``, and tinyshakespeare's
  letters with everything else removed, as is and lowercased), one thread, and its
  per-byte cost relative to tinyshakespeare (``vs_text``: 1.0 means as fast per byte).

Times are medians of ``--repeats`` runs; MB = 10**6 bytes of UTF-8. ``--train`` also runs
``benches/bench_tokenizer_train.py`` (the trainer's section).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_CORPUS = ROOT / "bench-data" / "corpus.txt"
# encoding -> (shared vocab file, fastllm pattern, tiktoken_ext constructor)
ENCODINGS = {
    "gpt2": ("gpt2.tiktoken", "gpt2", "r50k_base"),
    "cl100k_base": ("cl100k_base.tiktoken", "cl100k", "cl100k_base"),
    "o200k_base": ("o200k_base.tiktoken", "o200k", "o200k_base"),
}


def shared_data_dir() -> Path:
    for candidate in (os.environ.get("FASTLLM_SHARED_DATA", ""), str(ROOT.parent / "shared" / "data")):
        if candidate and Path(candidate, "gpt2.tiktoken").is_file():
            return Path(candidate)
    sys.exit("needs the real vocab files: set FASTLLM_SHARED_DATA to the folder holding gpt2.tiktoken etc.")


def interleaved_medians(calls: dict[str, object], repeats: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median wall time of each ``calls[name]()`` over ``repeats`` rounds, and each last result.

    Rounds run every implementation once in turn, so a change in machine load
    (2 shared cores here) hits all of them alike and the ratios stay fair.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, call in calls.items():
            results[name] = None  # free the previous result before timing again
            start = time.perf_counter()
            results[name] = call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, results


def build_tokenizers(name: str, data: Path, workdir: Path):
    """(fastllm Tokenizer, tiktoken Encoding, tokenizers.Tokenizer) of one encoding."""
    import tiktoken
    import tokenizers
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext import openai_public

    from fastllm import Tokenizer

    file_name, pattern, ctor = ENCODINGS[name]
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *a, **k: {}  # only pat_str and special tokens are wanted
    try:
        spec = getattr(openai_public, ctor)()
    finally:
        openai_public.load_tiktoken_bpe = original
    ours = Tokenizer.from_tiktoken(data / file_name, pattern=pattern, special_tokens=spec["special_tokens"], name=name)
    reference = tiktoken.Encoding(
        name, pat_str=spec["pat_str"], mergeable_ranks=load_tiktoken_bpe(str(data / file_name)),
        special_tokens=spec["special_tokens"],
    )
    hf_path = workdir / f"{name}.tokenizer.json"
    ours.to_hf_json(hf_path)
    return ours, reference, tokenizers.Tokenizer.from_file(str(hf_path))


def load_corpora(data: Path, corpus_mb: float) -> dict[str, str]:
    corpora = {
        "tinyshakespeare": (data / "tinyshakespeare.txt").read_text(encoding="utf-8"),
        "multilingual": (data / "multilingual.txt").read_text(encoding="utf-8"),
    }
    if BENCH_CORPUS.is_file():
        with open(BENCH_CORPUS, "rb") as handle:
            raw = handle.read(int(corpus_mb * 1e6))
        corpora["corpus"] = raw.decode("utf-8", "ignore")  # a cut may split the last character
    else:
        print(f"({BENCH_CORPUS} missing: run benches/bench_corpus.py for the larger corpus)", file=sys.stderr)
    return corpora


def bench_encoding(name, ours, reference, hf, corpora, repeats, threads, rows):
    def add(section, corpus, n_bytes, n_docs, timings, same):
        row = {"section": section, "encoding": name, "corpus": corpus, "bytes": n_bytes, "docs": n_docs, "same": same}
        for impl, seconds in timings.items():
            row[f"{impl}_s"] = seconds
            row[f"{impl}_mb_s"] = n_bytes / 1e6 / seconds
        rows.append(row)
        print(_format_row(row), flush=True)

    single = (ours.encode_ordinary, reference.encode_ordinary, functools.partial(hf.encode, add_special_tokens=False))
    batch = (
        ours.encode_ordinary_batch,
        functools.partial(reference.encode_ordinary_batch, num_threads=threads),
        functools.partial(hf.encode_batch, add_special_tokens=False),
    )

    def measure(functions, argument):
        calls = {impl: functools.partial(fn, argument) for impl, fn in zip(("fastllm", "tiktoken", "hf"), functions)}
        timings, out = interleaved_medians(calls, repeats)
        return timings, out["fastllm"] == out["tiktoken"]

    for corpus, text in corpora.items():
        n_bytes = len(text.encode("utf-8"))
        add("single", corpus, n_bytes, 1, *measure(single, text))
        for section, docs in (("batch", _documents(text)), ("lines", text.splitlines(keepends=True))):
            add(section, corpus, n_bytes, len(docs), *measure(batch, docs))

    base = next(r for r in rows if r["encoding"] == name and r["section"] == "single" and r["corpus"] == "tinyshakespeare")
    # Real letters with everything else removed: one long piece per run of letters (o200k still
    # splits before capitals, so the lowercase variant is its hard case).
    letters = re.sub(r"[^A-Za-z]", "", corpora["tinyshakespeare"])
    letters = (letters * (1_000_000 // len(letters) + 1))[:1_000_000]
    worst = (("'^'*1e6", "^" * 1_000_000), ("'a'*1e6", "a" * 1_000_000),
             ("letters", letters), ("lowercase", letters.lower()))
    for label, text in worst:
        add("worst", label, len(text), 1, *measure(single, text))
        row = rows[-1]
        row["fastllm_vs_text"] = row["fastllm_mb_s"] / base["fastllm_mb_s"]
        row["tiktoken_vs_text"] = row["tiktoken_mb_s"] / base["tiktoken_mb_s"]


def _documents(text: str) -> list[str]:
    docs = text.split("\n\n")
    return [doc + "\n\n" for doc in docs[:-1]] + docs[-1:]


HEADER = (
    f"{'section':<7} {'encoding':<12} {'input':<16} {'docs':>7} {'MB':>6}  "
    f"{'fastllm':>8} {'tiktoken':>8} {'HF':>8}  {'x tiktoken':>10} {'x HF':>6}  same"
)


def _format_row(row: dict) -> str:
    extra = ""
    if "fastllm_vs_text" in row:
        extra = f"  per-byte speed vs text: fastllm {row['fastllm_vs_text']:.2f}, tiktoken {row['tiktoken_vs_text']:.2f}"
    return (
        f"{row['section']:<7} {row['encoding']:<12} {row['corpus']:<16} {row['docs']:>7} {row['bytes'] / 1e6:>6.2f}  "
        f"{row['fastllm_mb_s']:>8.2f} {row['tiktoken_mb_s']:>8.2f} {row['hf_mb_s']:>8.2f}  "
        f"{row['fastllm_mb_s'] / row['tiktoken_mb_s']:>10.2f} {row['fastllm_mb_s'] / row['hf_mb_s']:>6.2f}  "
        f"{'yes' if row['same'] else 'NO'}{extra}"
    )


def run_train_section(quick: bool, json_path: str | None) -> dict | None:
    script = ROOT / "benches" / "bench_tokenizer_train.py"
    if not script.is_file():
        print(f"\n(training section skipped: {script.name} is not there)")
        return None
    argv = [sys.executable, str(script)] + (["--mb", "2", "--vocab", "4096"] if quick else [])
    train_json = None
    if json_path:
        train_json = str(Path(json_path).with_suffix("")) + ".train.json"
        argv += ["--json", train_json]
    print(f"\n== training ({' '.join(argv[1:])}) ==", flush=True)
    subprocess.run(argv, check=True)
    if train_json and Path(train_json).is_file():
        return json.loads(Path(train_json).read_text())
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs (300k characters of each corpus), 3 repeats")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (median; default 5, quick 3)")
    parser.add_argument("--corpus-mb", type=float, default=None, help="prefix of bench-data/corpus.txt (default 20, quick 2)")
    parser.add_argument("--encodings", default=",".join(ENCODINGS), help="comma-separated subset")
    parser.add_argument("--train", action="store_true", help="also run the training benchmark")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    corpus_mb = args.corpus_mb or (2.0 if args.quick else 20.0)
    names = [n for n in args.encodings.split(",") if n]
    unknown = [n for n in names if n not in ENCODINGS]
    if unknown:
        parser.error(f"unknown encodings {unknown}; choose from {list(ENCODINGS)}")

    import tiktoken
    import tokenizers

    import fastllm

    data = shared_data_dir()
    corpora = load_corpora(data, corpus_mb)
    if args.quick:
        corpora = {k: v[:300_000] for k, v in corpora.items()}
    threads = os.cpu_count() or 1
    print(
        f"fastllm {fastllm.__version__}, tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}; "
        f"{threads} CPU cores; median of {repeats}; MB/s of UTF-8 input"
    )
    print("x tiktoken / x HF: fastllm's throughput over theirs (above 1: fastllm faster)\n")
    print(HEADER)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in names:
            ours, reference, hf = build_tokenizers(name, data, Path(workdir))
            bench_encoding(name, ours, reference, hf, corpora, repeats, threads, rows)
    train = run_train_section(args.quick, args.json) if args.train else None
    if args.json:
        result = {
            "benchmark": "tokenizer encode",
            "machine": {"cpus": threads, "platform": platform.platform(), "python": platform.python_version()},
            "versions": {"fastllm": fastllm.__version__, "tiktoken": tiktoken.__version__, "tokenizers": tokenizers.__version__},
            "repeats": repeats,
            "quick": args.quick,
            "rows": rows,
            "train": train,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"\nwrote {args.json}")
    if not all(row["same"] for row in rows):
        print("\nERROR: fastllm's ids differ from tiktoken's somewhere (see 'same')", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
