"""Tokenizer decode throughput: fastllm against the same peers as ``bench_tokenizer.py``.

    python benches/bench_decode.py [--encodings LIST] [--corpora LIST] [--rounds N] [--json PATH]
    python benches/bench_decode.py --markdown PATH [--before PATH]   # RESULTS.md's table of a run

Decoding is a copy of each token's bytes and, for text, a UTF-8 decode, so what sets libraries
apart is how they read the ids (a Python list, or a numpy array) and what they copy. One process
pinned to one CPU (``RAYON_NUM_THREADS=1`` and ``FASTOKENS_BPE_THREADS=1`` set before anything
loads). Each sub-corpus is cut at line ends into slices of ~256 KB, as the encode benchmark's
cold rounds are, and encoded once; round r has every library decode slice r's ids, in an order
rotated every round. Four calls are measured where a library has them:

* ``str <- list``: the ids as a ``list[int]``, the text as ``str`` (fastllm, tiktoken, HF,
  gigatoken's tiktoken-compatible ``decode``, fastokens, riptoken, bpe-openai, wordchipper);
* ``bytes <- list``: the same ids, the text's UTF-8 as ``bytes`` (fastllm and tiktoken
  ``decode_bytes``, gigatoken's ``Tokenizer.decode``, riptoken, bpe-openai, kitoken);
* ``str <- numpy`` and ``bytes <- numpy``: the ids as a ``uint32`` array (fastllm; fastokens'
  ``decode`` and gigatoken's ``Tokenizer.decode`` take arrays too).

Every output is compared with tiktoken's; a library whose output differs is listed with ``*``
and not ranked. Speeds are MB of decoded UTF-8 per CPU-second of the process, medians over the
rounds; ``fastllm/best`` is the median of fastllm's speed over the fastest exact peer's.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tokenizer import (  # noqa: E402
    IMPLS,
    SUBCORPORA,
    _wordchipper_cache,
    cut,
    geomean,
    load_impls,
    load_subcorpora,
    shared_data_dir,
)

SLICE_BYTES = 256 * 1024
CALLS = ["str <- list", "bytes <- list", "str <- numpy", "bytes <- numpy"]


def load_decoders(name: str, data: Path, workdir: Path) -> tuple[dict, dict, object]:
    """{library: {call: function}} for every library that loads (built as the encode benchmark
    builds them), {library: why not}, and fastllm's tokenizer (which encodes the inputs)."""
    impls, missing, _ = load_impls(name, data, workdir, 1, list(IMPLS))
    calls = {
        "fastllm": lambda tok: {"str <- list": tok.decode, "bytes <- list": tok.decode_bytes,
                                "str <- numpy": tok.decode, "bytes <- numpy": tok.decode_bytes},
        "tiktoken": lambda enc: {"str <- list": enc.decode, "bytes <- list": enc.decode_bytes},
        "hf": lambda tok: {"str <- list": tok.decode},
        # Tokenizer.decode returns bytes and takes arrays; its tiktoken face returns text.
        "gigatoken": lambda tok: {"str <- list": tok.as_tiktoken().decode, "bytes <- list": tok.decode,
                                  "bytes <- numpy": tok.decode},
        "fastokens": lambda tok: {"str <- list": tok.decode, "str <- numpy": tok.decode},
        "riptoken": lambda core: {"str <- list": core.decode, "bytes <- list": core.decode_bytes},
        "bpe-openai": lambda enc: {"str <- list": enc.decode, "bytes <- list": enc.decode_bytes},
        "wordchipper": lambda tok: {"str <- list": tok.decode},
        "kitoken": lambda tok: {"bytes <- list": tok.decode},
    }
    decoders = {lib: calls[lib](fns["_obj"]) for lib, fns in impls.items()}
    return decoders, missing, impls["fastllm"]["_obj"]


def measure(decoders: dict, slices: list[list[int]], expected: list[tuple[str, bytes]]) -> dict:
    """{call: {library: {"mb_s": [...], "exact": bool}}} over the rounds (one slice each)."""
    import numpy as np

    out: dict = {call: {} for call in CALLS}
    entries = [(call, lib, fn) for lib, calls in decoders.items() for call, fn in calls.items()]
    for r, ids in enumerate(slices):
        array = np.asarray(ids, dtype=np.uint32)
        text, raw = expected[r]
        order = entries[r % len(entries):] + entries[: r % len(entries)]
        for call, lib, fn in order:
            given = array if call.endswith("numpy") else list(ids)  # a list of its own, outside the timing
            started = time.process_time()
            got = fn(given)
            spent = time.process_time() - started
            cell = out[call].setdefault(lib, {"mb_s": [], "exact": True})
            cell["mb_s"].append(len(raw) / 1e6 / max(spent, 1e-9))
            want = text if call.startswith("str") else raw
            if bytes(got) != want if isinstance(want, bytes) else got != want:
                cell["exact"] = False
    return out


def rows_of(name: str, corpus: str, result: dict) -> list[dict]:
    rows = []
    for call in CALLS:
        cells = result[call]
        if "fastllm" not in cells:
            continue
        medians = {lib: statistics.median(c["mb_s"]) for lib, c in cells.items()}
        peers = {lib: m for lib, m in medians.items() if lib != "fastllm" and cells[lib]["exact"]}
        best = max(peers, key=peers.get) if peers else None
        ratio = None
        if best:
            ratio = statistics.median(a / b for a, b in zip(cells["fastllm"]["mb_s"], cells[best]["mb_s"]))
        rows.append({"encoding": name, "input": corpus, "call": call, "fastllm": medians["fastllm"],
                     "fastllm_exact": cells["fastllm"]["exact"], "best": best, "best_mb_s": peers.get(best),
                     "ratio": ratio, "tiktoken": medians.get("tiktoken"), "all": medians,
                     "inexact": sorted(lib for lib, c in cells.items() if not c["exact"])})
    return rows


def markdown(rows: list[dict], before: list[dict] | None = None) -> str:
    """RESULTS.md's table: per encoding and call, geometric means over the inputs (and, given an
    earlier run's rows, fastllm's speed and ratio then)."""
    def gm(values):
        return geomean([v for v in values if v])

    head = "| encoding | call | fastllm MB/s | fastest exact peer, MB/s | **fastllm/best** (by input) | x tiktoken |"
    if before:
        head = head.replace("| fastllm MB/s |", "| fastllm MB/s before (x best) | fastllm MB/s |")
    lines = [head, "| " + " | ".join(["---", "---"] + ["---:"] * (head.count("|") - 3)) + " |"]
    for name in dict.fromkeys(r["encoding"] for r in rows):
        for call in CALLS:
            now = [r for r in rows if r["encoding"] == name and r["call"] == call and r["ratio"]]
            if not now:
                continue
            peers = " / ".join(sorted({r["best"] for r in now}))
            ratios = [r["ratio"] for r in now]
            tiktoken = gm([r["fastllm"] / r["tiktoken"] for r in now if r["tiktoken"]])
            cells = [name, f"`{call}`"]
            if before:
                then = [r for r in before if r["encoding"] == name and r["call"] == call and r["ratio"]]
                cells.append(f"{gm([r['fastllm'] for r in then]):.0f} ({gm([r['ratio'] for r in then]):.2f}x)" if then else "-")
            cells += [f"{gm([r['fastllm'] for r in now]):.0f}", f"{peers} {gm([r['best_mb_s'] for r in now]):.0f}",
                      f"**{gm(ratios):.2f}x** ({min(ratios):.2f}-{max(ratios):.2f})", f"{tiktoken:.1f}" if tiktoken else "-"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encodings", default="gpt2,cl100k_base,o200k_base")
    parser.add_argument("--corpora", default=",".join(SUBCORPORA))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", help="write every row here")
    parser.add_argument("--markdown", metavar="JSON", help="only print RESULTS.md's table of an earlier run's JSON")
    parser.add_argument("--before", metavar="JSON", help="with --markdown: an earlier build's run, for a before column")
    args = parser.parse_args(argv)
    if args.markdown:
        before = json.loads(Path(args.before).read_text())["rows"] if args.before else None
        print(markdown(json.loads(Path(args.markdown).read_text())["rows"], before))
        return 0
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    data = shared_data_dir()
    corpora, note = load_subcorpora([c for c in args.corpora.split(",") if c], data)
    if note:
        print(f"({note})")
    rows, missing_all = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        os.environ.setdefault("WORDCHIPPER_CACHE_DIR", str(_wordchipper_cache(data, Path(workdir))))
        for name in args.encodings.split(","):
            decoders, missing, tokenizer = load_decoders(name, data, Path(workdir))
            missing_all[name] = missing
            tik = decoders["tiktoken"]
            print(f"\n{name}: fastllm/best, MB of text per CPU-second (fastllm | fastest exact peer | x tiktoken)")
            print(f"  {'input':8s}" + "".join(f"{call:>40s}" for call in CALLS))
            for corpus, blob in corpora.items():
                pieces = cut(blob, args.rounds, SLICE_BYTES)
                slices = [tokenizer.encode_ordinary(p.decode("utf-8")) for p in pieces]
                expected = [(tik["str <- list"](ids), tik["bytes <- list"](ids)) for ids in slices]
                got = rows_of(name, corpus, measure(decoders, slices, expected))
                rows += got
                cells = {row["call"]: row for row in got}
                line = f"  {corpus:8s}"
                for call in CALLS:
                    row = cells.get(call)
                    if row is None:
                        line += f"{'-':>40s}"
                        continue
                    best = f"{row['best']} {row['best_mb_s']:.0f}" if row["best"] else "no peer"
                    ratio = f"{row['ratio']:.2f}x" if row["ratio"] else "-"
                    flag = "" if row["fastllm_exact"] else "*"
                    tk = f"{row['fastllm'] / row['tiktoken']:.1f}" if row["tiktoken"] else "-"
                    line += f"{ratio:>7s} ({row['fastllm']:.0f}{flag} | {best} | {tk})".rjust(40)
                print(line, flush=True)
            if missing:
                print(f"  not measured: {missing}")
    print("\nsummary (geometric mean of fastllm/best over the inputs):")
    for name in args.encodings.split(","):
        for call in CALLS:
            ratios = [r["ratio"] for r in rows if r["encoding"] == name and r["call"] == call and r["ratio"]]
            if ratios:
                print(f"  {name:12s} {call:15s} {geomean(ratios):.2f}x")
    inexact = sorted({(r["encoding"], r["call"], lib) for r in rows for lib in r["inexact"]})
    if inexact:
        print("outputs that differ from tiktoken's (not ranked):", inexact)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "missing": missing_all}, indent=1))
    return 0 if all(r["fastllm_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
