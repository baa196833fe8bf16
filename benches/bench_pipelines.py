"""Encode speed of ``tokenizer.json`` pipelines, by the pre-tokenizer shapes open models use.

    python benches/bench_pipelines.py [--vocab cl100k_base] [--repeats N] [--shapes llama3,deepseek_v3,...]

Each shape is a ``tokenizer.json`` file written here over the ranks of a shared ``.tiktoken``
file (cl100k_base by default; the models' own ranks are not in the shared data), with the
normalizer and pre-tokenizer of a real model (``SHAPES``), read by ``Tokenizer.from_hf_json``.
fastllm's ``encode_ordinary`` runs on the sub-corpora of ``benches/bench_tokenizer_corpus.py``
(en, latin, zh, code-py) cut into ``--repeats`` slices of about 256 KB, one pinned CPU, rayon
on one thread. Round r has every shape encode slice r from its own fresh ``str``, in an order
rotated every round, so that each shape's piece cache sees the text for the first time (cold).
Speeds are MB per CPU-second, the median over the rounds; ``x llama3`` is the Llama 3 shape's
CPU time over the shape's on the same slices, all rounds together (the reference: one
``Split`` that the core's own scanner runs). With ``tokenizers`` installed, every shape's ids
on the first 32 KB of every slice are checked against ``tokenizers``' own ``encode`` of the
same file (its speed on long texts is 1-2 MB/s here, so it is not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benches.bench_patterns import VOCAB_FILES, shared_data_dir  # noqa: E402
from benches.bench_tokenizer import cut, load_subcorpora  # noqa: E402
from tests.support.open_model_patterns import DEEPSEEK_V3_CJK, DEEPSEEK_V3_DIGITS, DEEPSEEK_V3_WORDS, LLAMA3, QWEN2  # noqa: E402

SUBCORPORA = ["en", "latin", "zh", "code-py"]
SLICE_BYTES = 256_000
CHECK_BYTES = 32_000


def _split(regex: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


def _byte_level(prefix: bool = False, regex: bool = False) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}


NFC = {"type": "NFC"}
#: name -> (normalizer, pre_tokenizer), as the models' own files have them.
SHAPES: dict[str, tuple[dict | None, dict]] = {
    "llama3": (None, {"type": "Sequence", "pretokenizers": [_split(LLAMA3), _byte_level()]}),
    "qwen2": (NFC, {"type": "Sequence", "pretokenizers": [_split(QWEN2), _byte_level()]}),
    "deepseek_v3": (
        {"type": "Sequence", "normalizers": []},
        {"type": "Sequence", "pretokenizers": [*map(_split, (DEEPSEEK_V3_DIGITS, DEEPSEEK_V3_CJK, DEEPSEEK_V3_WORDS)),
                                                _byte_level()]},
    ),
    "starcoder": (None, {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                               _byte_level(regex=True)]}),
    "gpt2_prefix_space": (None, _byte_level(prefix=True, regex=True)),
}


def write_shape(base: dict, name: str, folder: Path) -> Path:
    document = json.loads(json.dumps(base))
    document["normalizer"], document["pre_tokenizer"] = SHAPES[name]
    path = folder / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", default="cl100k_base", choices=sorted(VOCAB_FILES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--corpora", default=",".join(SUBCORPORA))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    names = args.shapes.split(",")
    if "llama3" not in names:
        names.insert(0, "llama3")

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from fastllm import Tokenizer

    try:
        import tokenizers
    except ImportError:
        tokenizers = None
        print("tokenizers is not installed: ids are not checked")

    data = shared_data_dir()
    corpora, note = load_subcorpora(args.corpora.split(","), data)
    if note:
        print(note)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        Tokenizer.from_tiktoken(data / VOCAB_FILES[args.vocab], pattern=LLAMA3, special_tokens={}).to_hf_json(
            folder / "base.json")
        base = json.loads((folder / "base.json").read_text())
        paths = {name: write_shape(base, name, folder) for name in names}
        refs = {name: tokenizers.Tokenizer.from_file(str(p)) for name, p in paths.items()} if tokenizers else {}

        rows = []
        print(f"{'shape':18} {'corpus':8} {'MB/s':>8} {'x llama3':>9} same")
        for corpus, blob in corpora.items():
            slices = cut(blob, args.repeats + 1, SLICE_BYTES)
            ours = {name: Tokenizer.from_hf_json(p) for name, p in paths.items()}  # new piece caches
            warm = slices[-1].decode("utf-8")
            for tok in ours.values():
                tok.encode_ordinary(warm)
            times: dict[str, list[float]] = {n: [] for n in names}
            same = {n: True for n in names}
            for r, piece in enumerate(slices[:-1]):
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    text = piece.decode("utf-8")
                    c0 = time.process_time()
                    ids = ours[name].encode_ordinary(text)
                    times[name].append(max(time.process_time() - c0, 1e-9))
                    if refs:
                        head = text[:CHECK_BYTES]
                        same[name] &= ours[name].encode_ordinary(head) == refs[name].encode(head, add_special_tokens=False).ids
                    del ids
            mb = [len(p) / 1e6 for p in slices[:-1]]
            for name in names:
                row = {
                    "vocab": args.vocab, "shape": name, "corpus": corpus,
                    "mb_s": statistics.median(m / t for m, t in zip(mb, times[name])),
                    "x_llama3": sum(times["llama3"]) / sum(times[name]),
                    "same": same[name] if refs else None,
                }
                rows.append(row)
                print(f"{name:18} {corpus:8} {row['mb_s']:8.1f} {row['x_llama3']:9.2f} {row['same']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
