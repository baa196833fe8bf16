"""Tokenizer training benchmark: fastllm vs HF tokenizers' BpeTrainer vs rustbpe.

    python benches/bench_tokenizer_train.py [--mb 100] [--vocab 32768] [--json out.json]

Every trainer runs in its own subprocess, on the same text (the first ``--mb`` MB of
``bench-data/corpus.txt``, built by ``benches/bench_corpus.py``, cut at a line end),
with the same split pattern and vocabulary size, using all cores. Reported per
trainer: wall time of the training call (median over ``--repeat`` runs), peak RSS of
its process (``ru_maxrss``: the Python interpreter and the imported library
included; the RSS right after import is shown too), and how many of the learned
tokens the other trainers learned as well. Ratios are against fastllm (file).

Trainers:
* ``fastllm-file``: ``train_ranks(path)``, the file streamed in chunks;
* ``fastllm-iter``: ``train_ranks(iterator of lines)``;
* ``hf``: ``tokenizers`` BPE model, ``Split(Regex(pattern), "isolated")`` +
  ``ByteLevel(add_prefix_space=False, use_regex=False)``, ``BpeTrainer`` with the byte
  alphabet, trained with ``Tokenizer.train([path])`` (HF reads the file line by line);
* ``rustbpe``: ``Tokenizer().train_from_iterator(iterator of lines, vocab, pattern=...)``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "bench-data" / "corpus.txt"

CL100K = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
# Oniguruma (HF tokenizers) reads `{1,3}+` as "one or more times", not possessive.
CL100K_ONIGURUMA = CL100K.replace(r"\p{N}{1,3}+", r"\p{N}{1,3}")
TRAINERS = ["fastllm-file", "fastllm-iter", "hf", "rustbpe"]


def lines(path: str):
    with open(path, encoding="utf-8", newline="") as f:
        yield from f


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ----- worker side (one trainer per process) ---------------------------------------------


def train_fastllm(path: str, vocab: int, iterate: bool) -> list[bytes]:
    from fastllm.tokenizer.training import train_ranks

    source = lines(path) if iterate else path
    return train_ranks(source, vocab, pattern="cl100k", min_frequency=2, show_progress=False)


def train_hf(path: str, vocab: int) -> list[bytes]:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CL100K_ONIGURUMA), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train([path], trainer)
    from fastllm.tokenizer.formats.gpt2_vocab import CHAR_TO_BYTE  # HF ByteLevel uses GPT-2's byte table

    by_id = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    return [bytes(CHAR_TO_BYTE[c] for c in token) for token, _ in by_id]


def train_rustbpe(path: str, vocab: int) -> list[bytes]:
    import rustbpe

    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(lines(path), vocab, pattern=CL100K)
    ranks = tok.get_mergeable_ranks()
    pairs = ranks.items() if isinstance(ranks, dict) else ranks
    return [bytes(t) for t, _ in sorted(pairs, key=lambda kv: kv[1])]


def worker(name: str, path: str, vocab: int, out: str) -> None:
    import_start = time.perf_counter()
    if name.startswith("fastllm"):
        import fastllm.tokenizer.training  # noqa: F401
    elif name == "hf":
        import tokenizers  # noqa: F401
    else:
        import rustbpe  # noqa: F401
    rss_after_import = peak_rss_mb()
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    if name == "fastllm-file":
        tokens = train_fastllm(path, vocab, iterate=False)
    elif name == "fastllm-iter":
        tokens = train_fastllm(path, vocab, iterate=True)
    elif name == "hf":
        tokens = train_hf(path, vocab)
    else:
        tokens = train_rustbpe(path, vocab)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "wall_s": wall,
        "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "import_s": t0 - import_start,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_import_mb": rss_after_import,
        "tokens": [t.hex() for t in tokens],
    }
    Path(out).write_text(json.dumps(result))


# ----- driver side -----------------------------------------------------------------------


def make_prefix(corpus: Path, mb: float, dest: Path) -> int:
    """The first `mb` MB of `corpus`, cut after a newline, written to `dest`.

    Copied in small blocks: on Linux a child's peak RSS starts at its parent's RSS,
    so this process must stay small."""
    limit = int(mb * 1e6)
    written = 0
    with open(corpus, "rb") as src, open(dest, "wb") as out:
        while written < limit:
            block = src.read(min(1 << 20, limit - written))
            if not block:
                break
            out.write(block)
            written += len(block)
    if written == limit:  # cut after the last complete line
        with open(dest, "rb+") as f:
            tail_start = max(0, written - (1 << 20))
            f.seek(tail_start)
            tail = f.read()
            written = tail_start + tail.rfind(b"\n") + 1
            f.truncate(written)
    return written


def run_one(name: str, path: Path, vocab: int, workdir: Path) -> dict:
    out = workdir / f"{name}.json"
    cmd = [sys.executable, __file__, "--worker", name, "--file", str(path), "--vocab", str(vocab), "--out", str(out)]
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def overlap(a: list[str], b: list[str]) -> float:
    merged_a, merged_b = set(a[256:]), set(b[256:])
    return len(merged_a & merged_b) / max(1, len(merged_a))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--mb", type=float, default=100.0, help="use the first N MB of the corpus")
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--repeat", type=int, default=1, help="runs per trainer (median reported)")
    ap.add_argument("--trainers", default=",".join(TRAINERS), help=f"comma-separated subset of {TRAINERS}")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.file, args.vocab, args.out)
        return 0

    if not args.corpus.is_file():
        print(f"{args.corpus} not found: run `python benches/bench_corpus.py` first", file=sys.stderr)
        return 1
    names = [n for n in args.trainers.split(",") if n]
    unknown = set(names) - set(TRAINERS)
    if unknown:
        ap.error(f"unknown trainers {sorted(unknown)}")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        workdir = Path(tmp)
        text_path = workdir / "corpus.txt"
        nbytes = make_prefix(args.corpus, args.mb, text_path)
        print(f"corpus: {nbytes / 1e6:.1f} MB of {args.corpus}, vocab {args.vocab}, pattern cl100k, "
              f"{os.cpu_count()} cpus, {args.repeat} run(s) each", flush=True)
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for _ in range(args.repeat):
            for name in names:  # interleaved, so that load changes hit every trainer alike
                runs[name].append(run_one(name, text_path, args.vocab, workdir))
                last = runs[name][-1]
                print(f"  {name:13s} {last['wall_s']:8.2f} s wall {last['cpu_s']:8.2f} s cpu "
                      f"{last['peak_rss_mb']:7.0f} MB", flush=True)

    results = {}
    for name in names:
        r = runs[name]
        results[name] = {
            "wall_s_median": statistics.median(x["wall_s"] for x in r),
            "wall_s_all": [x["wall_s"] for x in r],
            "cpu_s_median": statistics.median(x["cpu_s"] for x in r),
            "peak_rss_mb": max(x["peak_rss_mb"] for x in r),
            "rss_after_import_mb": max(x["rss_after_import_mb"] for x in r),
            "num_tokens": len(r[0]["tokens"]),
        }
    base = names[0]
    print()
    header = f"{'trainer':13s} {'wall s':>8s} {'x faster':>9s} {'cpu s':>8s} {'cpu ratio':>9s} {'peak RSS MB':>12s} {'RSS ratio':>10s} {'import RSS':>11s} {'tokens':>7s}"
    header += "".join(f" {'same as ' + n:>17s}" for n in names)
    print(header)
    for name in names:
        res = results[name]
        speed = results[name]["wall_s_median"] / results[base]["wall_s_median"]
        rss = results[name]["peak_rss_mb"] / results[base]["peak_rss_mb"]
        cpu = results[name]["cpu_s_median"] / results[base]["cpu_s_median"]
        res["overlap"] = {n: overlap(runs[name][0]["tokens"], runs[n][0]["tokens"]) for n in names}
        row = (f"{name:13s} {res['wall_s_median']:8.2f} {speed:9.2f} {res['cpu_s_median']:8.2f} {cpu:9.2f} {res['peak_rss_mb']:12.0f} {rss:10.2f} "
               f"{res['rss_after_import_mb']:11.0f} {res['num_tokens']:7d}")
        row += "".join(f" {res['overlap'][n]:17.3f}" for n in names)
        print(row)
    print(f"\n'x faster' = this trainer's time / {base}'s time (above 1: {base} is faster); "
          f"'cpu' = user+sys seconds of all threads; 'RSS ratio' = this peak / {base}'s peak; 'same as X' = share of this trainer's merged "
          "tokens that X learned too")
    if args.json:
        payload = {
            "corpus_mb": nbytes / 1e6,
            "vocab_size": args.vocab,
            "pattern": "cl100k",
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "repeat": args.repeat,
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
