"""A/B of two (or more) builds of fastllm's tokenizer core, in one process.

On a shared VM, runs of one build in separate processes swing by 20% from minute to minute, which
hides the few per cent a change to the encoder is worth. Here every build's `_core` extension is
loaded into the same process under a module name of its own, and each slice of the corpus is
encoded by every build in turn (the order rotating per slice), so all builds see the same text,
cold, under the same load. The result is the median of the per-slice speed ratios to the first
build: about +-2% run to run here, on a quiet VM.

Compare two builds at a time, and run each comparison in both orders (`A B`, then `B A`): with
four builds in one process, three copies of the first build (each under a path of its own, so
that each is loaded apart) measured 0.90-0.98 of it (2026-12-02, o200k ru and cl100k en, 12
slices), and two copies 1.00-1.10 in either order, on a VM whose load moved ratios by up to 10%.
``--both-orders`` does that: two processes, one loading each build first, and the geometric mean
of the second build's ratio in the first and the inverse of the first build's in the second.

    # keep a copy of each build's package, e.g. before and after a change:
    make build && cp -r python/fastllm /tmp/ab/before/
    ...edit..., make build && cp -r python/fastllm /tmp/ab/after/
    python benches/ab_tokenizer_builds.py --encoding o200k --corpus latin \\
        /tmp/ab/before/fastllm/_core.abi3.so /tmp/ab/after/fastllm/_core.abi3.so
    # the same, once per load order (the way to read a few per cent):
    python benches/ab_tokenizer_builds.py --both-orders --encoding o200k --corpus latin \\
        /tmp/ab/before/fastllm/_core.abi3.so /tmp/ab/after/fastllm/_core.abi3.so

The corpora are those of `bench_tokenizer_corpus.py` (bench-data/tokenizer/NAME.txt); the
vocabularies come from ../shared/data (or FASTLLM_SHARED_DATA). Pin it to one CPU for single-thread
numbers (`taskset -c 1`). Each build encodes each slice from a fresh `str`, but a build's piece cache carries across
slices as it does across calls; keep slices x slice size below the corpus size, or later slices
repeat earlier text (the script refuses to wrap around).

In one process the builds share the CPU's caches and TLB, so a change to how much memory a build
touches (a bigger table) slows the other build as much as itself, and the in-process ratio flatters
it: a piece cache four times bigger on 4 KiB pages came out 8% faster on latin here and 14% slower
in processes of its own. For such changes use ``--solo ROUNDS``: each round runs every build in a
process of its own (the order rotating), which encodes ``--warm`` slices first (as a long-running
process would have) and then the next ``--slices``, and reports its median MB/s per slice; the
result is the median over the rounds of each build's ratio to the first build's in the same round
(+-5% here with 8-10 rounds on a busy machine):

    python benches/ab_tokenizer_builds.py --solo 10 --warm 16 --slices 24 --encoding cl100k \
        --corpus latin /tmp/ab/before/fastllm/_core.abi3.so /tmp/ab/after/fastllm/_core.abi3.so

The peer benchmark encodes every input in one process (en, latin, ja, zh, ru, uk, code-c, code-py),
so by its later inputs the piece cache is near its limit of slots (some 250,000 distinct pieces
that are no token, by a count of tiktoken's). ``--seen en,latin,ja,zh`` makes each build encode
2 MB (``--seen-mb``) of each of those first, so that a change to how the cache behaves full is
measured as that benchmark meets it: the piece cache's line sets (thirty-seventh session) measured
cl100k ru x0.990 on a fresh cache and x1.094 after ``--seen en,latin,ja,zh``, as the benchmark's
later inputs gained. The corpus timed must not be one of them (its slices would have been seen).

In the peer benchmark the other libraries (up to eight) run between two calls of fastllm's, and
their tables push fastllm's out of the CPU's caches: each call starts with its vocabulary, merge
table and piece cache in memory, not in L3. ``--evict-mb 64`` models that: before each timed call
(outside the timing) a 64 MB buffer is written a line in every 64 bytes. It cost cl100k code-c 19%
here (157 -> 127 MB/s, 256 KB slices). With it an in-process A/B is also fair to changes of a
table's size, since no build finds its tables warm:

    python benches/ab_tokenizer_builds.py --both-orders --evict-mb 64 --slice-kb 256 --slices 16 \
        --encoding cl100k --corpus latin /tmp/ab/before/fastllm/_core.abi3.so /tmp/ab/after/fastllm/_core.abi3.so
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.merge_lists import converter_merges  # noqa: E402
from tests.support.open_model_patterns import DEEPSEEK_V3_CJK, DEEPSEEK_V3_DIGITS, DEEPSEEK_V3_WORDS, LLAMA3  # noqa: E402

VOCABS = {"gpt2": "gpt2.tiktoken", "cl100k": "cl100k_base.tiktoken", "o200k": "o200k_base.tiktoken"}


def _pipeline(*splits: str):
    """A core pipeline description (see `pipeline_spec` in rust/src/bindings/tokenizer.rs): no
    normalizer, `Split(Isolated)`s, then ByteLevel without a prefix space or regex, no added tokens."""
    steps = [("split", regex, "isolated", False) for regex in splits]
    return None, [*steps, ("byte_level", False, False)], []


#: Pre-tokenizers of open models' tokenizer.json files, as the core takes them.
PIPELINES = {
    "llama3": _pipeline(LLAMA3),
    "deepseek_v3": _pipeline(DEEPSEEK_V3_DIGITS, DEEPSEEK_V3_CJK, DEEPSEEK_V3_WORDS),
}


def load_core(path: Path, index: int):
    """The `_core` module at `path`, under a name of its own (its init function is `PyInit__core`)."""
    spec = importlib.util.spec_from_file_location(f"fastllm_ab_{index}._core", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a loadable extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", nargs="+", type=Path, help="paths of _core.abi3.so files; the first is the baseline")
    parser.add_argument("--encoding", choices=sorted(VOCABS), default="o200k")
    parser.add_argument("--corpus", default="en", help="bench-data/tokenizer/CORPUS.txt")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES),
                        help="split with an open model's tokenizer.json pre-tokenizer instead of the encoding's pattern")
    parser.add_argument("--merge-list", action="store_true",
                        help="merge by the list a tokenizer.json converted from the ranks holds (every split of each"
                             " token, as Llama 3's), with ignore_merges, instead of by rank")
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--slice-kb", type=int, default=128)
    parser.add_argument("--solo", type=int, default=0, metavar="ROUNDS",
                        help="run each build in a process of its own, ROUNDS times (see above)")
    parser.add_argument("--warm", type=int, default=16, help="with --solo: slices encoded before the timed ones")
    parser.add_argument("--both-orders", action="store_true",
                        help="two builds: run the comparison in a process per load order (see above)")
    parser.add_argument("--evict-mb", type=int, default=0, metavar="MB",
                        help="write MB of other memory before each timed call, outside the timing, as the peer"
                             " benchmark's other libraries do between fastllm's calls (see above)")
    parser.add_argument("--seen", default="", metavar="CORPORA",
                        help="comma-separated corpora each build encodes first (--seen-mb of each, in slices),"
                             " as the peer benchmark's one process has encoded the inputs before this one (see above)")
    parser.add_argument("--seen-mb", type=float, default=2.0, help="with --seen: megabytes of each (default 2)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.both_orders:
        if len(args.builds) != 2 or args.solo:
            parser.error("--both-orders takes exactly two builds and no --solo")
        return both_orders(args)
    if args.solo and not args.worker:
        return solo(args)

    from tiktoken.load import load_tiktoken_bpe

    shared = Path(os.environ.get("FASTLLM_SHARED_DATA", ROOT.parent / "shared" / "data"))
    vocab = shared / VOCABS[args.encoding]
    corpus = ROOT / "bench-data" / "tokenizer" / f"{args.corpus}.txt"
    for path in (vocab, corpus, *args.builds):
        if not path.exists():
            raise SystemExit(f"{path}: not found")
    resolved = [path.resolve() for path in args.builds]
    if len(set(resolved)) < len(resolved):
        # The dynamic loader hands back the module already loaded from a path: the "two builds"
        # would be one, sharing its thread caches.
        raise SystemExit("a build is given twice: copy it to a path of its own to compare it with itself")
    ranks = load_tiktoken_bpe(str(vocab))
    tokens = [token for token, _ in sorted(ranks.items(), key=lambda item: item[1])]
    pipeline = PIPELINES[args.pipeline] if args.pipeline else None
    merges = converter_merges(tokens) if args.merge_list else None
    cores = [load_core(path, k).CoreBPE(tokens, {}, args.encoding, pipeline, merges=merges)
             for k, path in enumerate(args.builds)]

    text = corpus.read_text(encoding="utf-8")
    size = args.slice_kb * 1024
    seen = seen_text(args)
    for core in cores:
        for i in range(0, len(seen), size):
            core.encode_ordinary(seen[i:i + size])
    warm = args.warm if args.worker else 0
    if (warm + args.slices) * size > len(text):
        raise SystemExit(f"{corpus}: {len(text)} characters, fewer than {warm + args.slices} slices of {size}")
    if args.worker:
        # One build alone: the warm-up slices, then the median speed over the next ones.
        (core,) = cores
        for i in range(warm):
            core.encode_ordinary(text[i * size:(i + 1) * size])
        evict = Evictor(args.evict_mb)
        timed = []
        for i in range(warm, warm + args.slices):
            evict()
            timed.append(speed(core, text[i * size:(i + 1) * size].encode()))
        print(statistics.median(timed))
        return 0
    evict = Evictor(args.evict_mb)
    speeds: list[list[float]] = [[] for _ in cores]
    for i in range(args.slices):
        data = text[i * size:(i + 1) * size].encode()
        for k in rotated(len(cores), i):
            evict()
            speeds[k].append(speed(cores[k], data))
    report(args, speeds, "MB/s")
    return 0


def seen_text(args: argparse.Namespace) -> str:
    """The text of `--seen`: the first `--seen-mb` of each corpus named, one after another."""
    parts = []
    names = [name for name in args.seen.split(",") if name]
    if args.corpus in names:
        raise SystemExit(f"--seen {args.seen}: the timed corpus {args.corpus} would have been seen")
    for name in names:
        path = ROOT / "bench-data" / "tokenizer" / f"{name}.txt"
        if not path.exists():
            raise SystemExit(f"{path}: not found")
        with path.open("rb") as f:
            parts.append(f.read(int(args.seen_mb * 1e6)).decode("utf-8", errors="ignore"))
    return "".join(parts)


def speed(core, data: bytes) -> float:
    """MB per CPU-second of `core` encoding `data` from a `str` of its own: CPython caches a str's
    UTF-8 once asked, so a build given a str another build had encoded would get it free."""
    piece = data.decode()
    start = time.process_time()
    core.encode_ordinary(piece)
    return len(data) / 1e6 / (time.process_time() - start)


class Evictor:
    """Writes a line of every 64 bytes of a buffer of `mb` megabytes (nothing for 0): the CPU's
    caches then hold that buffer instead of the last build's tables, as in the peer benchmark,
    where the other libraries' tables pass through them between two calls of fastllm's."""

    def __init__(self, mb: int):
        import numpy

        self.lines = numpy.zeros(mb << 20, dtype=numpy.uint8)[::64] if mb else None

    def __call__(self) -> None:
        if self.lines is not None:
            self.lines += 1


def rotated(n: int, r: int) -> list[int]:
    """The builds' order in round `r`: rotated each round, so that none always goes first."""
    return list(range(r % n, n)) + list(range(r % n))


def report(args: argparse.Namespace, speeds: list[list[float]], unit: str) -> None:
    """Each build's median speed and its median ratio to the first build's, round by round."""
    for k, path in enumerate(args.builds):
        ratios = [a / b for a, b in zip(speeds[k], speeds[0])]
        print(f"{args.encoding} {args.corpus} {path}: median {statistics.median(speeds[k]):.1f} {unit},"
              f" x{statistics.median(ratios):.3f} the first build")


def corpus_options(args: argparse.Namespace) -> list[str]:
    """The options that choose the text, for a run of this script in a process of its own."""
    return ["--encoding", args.encoding, "--corpus", args.corpus, "--slices", str(args.slices),
            "--evict-mb", str(args.evict_mb), "--seen", args.seen, "--seen-mb", str(args.seen_mb),
            "--slice-kb", str(args.slice_kb), *(["--pipeline", args.pipeline] if args.pipeline else []),
            *(["--merge-list"] if args.merge_list else [])]


def both_orders(args: argparse.Namespace) -> int:
    """The in-process comparison of builds A and B once loading A first, once B first: B's speed
    over A's as the geometric mean of the two runs' ratios (the second inverted)."""
    options = corpus_options(args)
    ratios = []
    for first, second in (args.builds, args.builds[::-1]):
        run = subprocess.run([sys.executable, __file__, *options, str(first), str(second)],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise SystemExit(f"{first} then {second}: {run.stderr.strip() or run.stdout.strip()}")
        print(run.stdout.strip())
        # The last line is the second build's: "... x<ratio> the first build".
        ratios.append(float(run.stdout.strip().splitlines()[-1].split(" x")[-1].split()[0]))
    mean = (ratios[0] / ratios[1]) ** 0.5
    print(f"{args.encoding} {args.corpus} {args.builds[1]}: x{mean:.3f} {args.builds[0]} "
          f"(both load orders: x{ratios[0]:.3f}, 1/x{ratios[1]:.3f})")
    return 0


def solo(args: argparse.Namespace) -> int:
    """Every build in processes of its own, round after round; the median ratio to the first build."""
    options = [*corpus_options(args), "--warm", str(args.warm)]
    speeds: list[list[float]] = [[] for _ in args.builds]
    for r in range(args.solo):
        for k in rotated(len(args.builds), r):
            run = subprocess.run([sys.executable, __file__, *options, "--worker", str(args.builds[k])],
                                 capture_output=True, text=True, check=False)
            if run.returncode != 0:
                raise SystemExit(f"{args.builds[k]}: {run.stderr.strip()}")
            speeds[k].append(float(run.stdout.split()[-1]))
    report(args, speeds, f"MB/s per slice (solo, {args.solo} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
