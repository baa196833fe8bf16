"""Instructions a token, function by function, for fastllm's encoder or a peer's: counted by
callgrind, so the count does not move with the VM's load the way timings do.

On a shared 2-core VM an in-process A/B reads a few per cent at best (see ab_tokenizer_builds.py).
Where the encoder is bound by the instructions it runs (the forty-fifth session found the
per-piece path so on a Zen 3 VM: a different prefetch distance changed nothing, a third fewer
instructions in `flush` and the lists gave 10-15%), the count says at once whether a change cut
work, and the listing says where the rest goes. It does not see memory waits: time a change too.
It counts each round of a `rep` string instruction as one: the `memset` that CPython's
`PyList_New` runs to clear a list's items (a `rep stosb` of eight bytes a token) reads as eight
instructions a token that take a fraction of one's time.

Each count runs one Python process under `valgrind --tool=callgrind` that encodes the first
``--slices`` slices of a corpus, then one that encodes ``--slices + --extra``; the difference per
function, over the tokens of the extra slices, leaves out the first slices' cold start; for fastllm
only its encode calls are counted, not loading or set-up. Needs valgrind (``apt-get install valgrind``); about ten seconds a count.

    python benches/count_tokenizer_instructions.py --encoding cl100k_base --corpus code-c
    python benches/count_tokenizer_instructions.py --library fastokens --corpus latin
    # a build kept aside (the directory that holds its `fastllm` package):
    python benches/count_tokenizer_instructions.py --package /tmp/ab/before --corpus en
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "bench-data" / "tokenizer"
SHARED = Path(os.environ.get("FASTLLM_SHARED_DATA", ROOT.parent / "shared" / "data"))
# callgrind_annotate's function lines: "12,345 (1.2%)  file:function [object]".
FUNCTION_LINE = re.compile(r"\s*([\d,]+) \([\s\d.]+%\)\s+(.*?) \[")
# The calls whose instructions count, by library (fastllm's encode returns the list itself). fastokens
# is counted whole: collecting only inside its calls gave 69 to 298 instructions a token of one
# input from run to run (work off the calling thread comes and goes), while its set-up is steady.
ENCODE_CALLS = {"fastllm": ["PyCoreBpe::__pymethod_encode_ordinary__"]}


def worker(args: argparse.Namespace) -> None:
    """Encodes the slices (run under callgrind); prints how many tokens they gave."""
    text = (CORPORA / f"{args.corpus}.txt").read_text(encoding="utf-8")
    size = args.slice_kchars * 1000
    # Slice 0 is left for the warm-up call below.
    slices = [text[(i + 1) * size:(i + 2) * size] for i in range(args.count)]
    if len(slices[-1]) < size:
        raise SystemExit(f"{args.corpus}.txt holds fewer than {args.count + 1} slices of {size} characters")
    if args.library == "fastllm":
        if args.package:
            sys.path.insert(0, str(args.package))
        from fastllm import Tokenizer

        # fastllm's own scanner for each encoding's pattern, by its short name.
        pattern = {"gpt2": "gpt2", "cl100k_base": "cl100k", "o200k_base": "o200k"}[args.encoding]
        tok = Tokenizer.from_tiktoken(str(SHARED / f"{args.encoding}.tiktoken"), pattern=pattern, special_tokens={},
                                      name=args.encoding)
        encode = tok.encode_ordinary
    else:
        import fastokens

        tok = fastokens.Tokenizer.from_tiktoken(str(SHARED / f"{args.encoding}.tiktoken"), encoding=args.encoding,
                                                special_tokens={})
        encode = lambda s: tok.encode_ordinary(s).ids  # noqa: E731
    encode(text[:1000])
    print(sum(len(encode(s)) for s in slices))


def count(args: argparse.Namespace, slices: int, out: Path) -> tuple[Counter, int]:
    """Instructions by function, and tokens, of a process that encodes `slices` slices."""
    # fastllm only inside its calls: its set-up splits its work over rayon's threads, whose share
    # (and so the count) differs from one process to the next by up to 15 instructions a token of
    # the difference; the slicing and freeing around the calls are Python's. fastokens whole
    # (ENCODE_CALLS): two runs of cl100k C code read 202.4 and 211.4.
    calls = ENCODE_CALLS.get(args.library)
    collect = ["--collect-atstart=no", *(f"--toggle-collect=*{name}" for name in calls)] if calls else []
    command = ["valgrind", "--tool=callgrind", *collect, f"--callgrind-out-file={out}",
               sys.executable, __file__, "--worker", "--count", str(slices)] + args.passed
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    if run.returncode != 0:
        raise SystemExit(f"callgrind run failed ({run.returncode}):\n{run.stderr[-2000:]}")
    tokens = int(run.stdout.split()[-1])
    report = subprocess.run(["callgrind_annotate", "--threshold=100", str(out)], capture_output=True, text=True,
                            check=True).stdout
    functions: Counter = Counter()
    for line in report.splitlines():
        if m := FUNCTION_LINE.match(line):
            functions[m.group(2).split(":", 1)[-1]] += int(m.group(1).replace(",", ""))
    return functions, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", choices=["fastllm", "fastokens"], default="fastllm")
    parser.add_argument("--encoding", default="cl100k_base", choices=["gpt2", "cl100k_base", "o200k_base"])
    parser.add_argument("--corpus", default="code-c", help="bench-data/tokenizer/CORPUS.txt")
    parser.add_argument("--slice-kchars", type=int, default=256)
    parser.add_argument("--slices", type=int, default=2, help="slices in the first count")
    parser.add_argument("--extra", type=int, default=4, help="further slices in the second count")
    parser.add_argument("--package", type=Path, help="directory holding the fastllm package to count")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.library == "fastokens" and args.encoding == "gpt2":
        parser.error("fastokens is set up here from its cl100k_base / o200k_base presets only")
    for tool in ("valgrind", "callgrind_annotate"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install valgrind")
    args.passed = ["--library", args.library, "--encoding", args.encoding, "--corpus", args.corpus,
                   "--slice-kchars", str(args.slice_kchars)] + (["--package", str(args.package)] if args.package else [])
    with tempfile.TemporaryDirectory() as tmp:
        before, tokens_before = count(args, args.slices, Path(tmp) / "before.out")
        after, tokens_after = count(args, args.slices + args.extra, Path(tmp) / "after.out")
    tokens = tokens_after - tokens_before
    per_token = {name: (after[name] - before[name]) / tokens for name in after.keys() | before.keys()}
    print(f"{args.library} {args.encoding} {args.corpus}: {sum(per_token.values()):.1f} instructions a token "
          f"over {tokens} tokens ({args.extra} slices of {args.slice_kchars}K characters)")
    for name, n in sorted(per_token.items(), key=lambda item: -item[1])[:args.top]:
        print(f"{n:9.1f}  {name[:110]}")


if __name__ == "__main__":
    main()
