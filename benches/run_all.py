"""Runs every benchmark in its quick mode and collects the JSON results.

    python benches/run_all.py [--out bench-data/results] [--full]

CPU benches (tokenizer encode, decode and training, generation, training step) always
run; the kernel benches run only where CUDA is available (on a CPU the Triton
kernels would run in the interpreter, which measures nothing useful). Each bench
prints its own table of ratios against the references measured in the same run;
this script only sequences them and reports which ones failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bench_commands(out: Path, full: bool, cuda: bool) -> list[tuple[str, list[str]]]:
    quick = [] if full else ["--quick"]
    cmds = [
        ("tokenizer", ["bench_tokenizer.py", *quick, "--json", str(out / "tokenizer.json")]),
        ("tokenizer_decode", ["bench_decode.py", *([] if full else ["--rounds", "3", "--corpora", "en,zh,code-c"]),
                              "--json", str(out / "tokenizer_decode.json")]),
        ("generate", ["bench_generate.py", "--json", str(out / "generate.json")]
         + ([] if full or cuda else ["--preset", "gpt2", "--new-tokens", "8", "--repeats", "1"])),
        ("train", ["bench_train.py", *quick, "--json", str(out / "train.json")]),
    ]
    corpus = HERE.parent / "bench-data" / "corpus.txt"
    if corpus.is_file():
        mb = ["--mb", "100"] if full else ["--mb", "10"]
        cmds.append(("tokenizer_train", ["bench_tokenizer_train.py", "--corpus", str(corpus), *mb,
                                         "--json", str(out / "tokenizer_train.json")]))
    if cuda:
        short = [] if full else ["--short"]
        cmds.append(("attention", ["bench_attention.py", *short, "--json", str(out / "attention.json")]))
        cmds.append(("cross_entropy", ["bench_cross_entropy.py", *short, "--json", str(out / "cross_entropy.json")]))
    return cmds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "bench-data" / "results")
    parser.add_argument("--full", action="store_true", help="full sizes instead of the quick modes")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    results = []
    for name, cmd in bench_commands(args.out, args.full, cuda):
        print(f"\n=== {name}: {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / cmd[0]), *cmd[1:]])
        results.append((name, rc, time.perf_counter() - t0))
    print("\n=== summary")
    for name, rc, secs in results:
        print(f"{name:<16} {'ok' if rc == 0 else f'FAILED (rc={rc})':<16} {secs:7.1f} s")
    print(f"JSON results in {args.out}")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
