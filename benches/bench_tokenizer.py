"""Tokenizer encode throughput: fastllm against the fastest tokenizers we know of, in the same run.

    python benches/bench_tokenizer.py [--quick] [--json PATH] [--repeats N] [--encodings LIST]
        [--corpora LIST] [--sections single,batch,worst] [--peers LIST] [--clock cpu|wall] [--train]

Peers (each one that is installed and loads; the others are listed as not measured): tiktoken,
HF tokenizers, gigatoken, fastokens, riptoken, bpe-openai, wordchipper, kitoken. All are built
offline from the official ``.tiktoken`` files (``../shared/data`` or ``$FASTLLM_SHARED_DATA``;
HF through fastllm's ``tokenizer.json`` export; bpe-openai from the copy of the same files that
it ships), each in its fastest configuration (fastokens from its own ``cl100k_base`` /
``o200k_base`` presets, which its pre-tokenizer recognises) and through its fastest call that
returns ids (see ``load_impls``). Every
output is compared with tiktoken's ``encode_ordinary``: a ``*`` after a number means the ids
differ somewhere in that row, and such a peer is listed but not ranked.

Each encoding runs in two subprocesses:

* one thread: pinned to one CPU (``os.sched_setaffinity``), with ``RAYON_NUM_THREADS=1`` and
  ``FASTOKENS_BPE_THREADS=1`` set before anything loads.

  - **cold** (the headline): text that no library has encoded in the process. Each
    sub-corpus (``bench-data/tokenizer/*.txt``, built by ``benches/bench_tokenizer_corpus.py``:
    en, latin, ja, zh, ru, uk, code-c, code-py) is cut at line ends into 2(R+1) consecutive
    slices. After a warm-up call on the last one, round r has every implementation encode
    slice r, each from its own fresh ``str`` (decoded from bytes outside the timing, so not
    even CPython's cached UTF-8 of a string is shared), in an order rotated every round. So all
    encode the same text, and none sees a text twice.
  - **hot**: the warm-up slice again, the same string object every round: what caches
    across calls do for repeated text.
  - list output (``list[int]``) for everyone, and numpy output where a library has one
    (fastllm ``encode_ordinary_to_numpy``, gigatoken ``Tokenizer.encode``, fastokens
    ``encode_batch_flat([text])`` read with ``numpy.frombuffer``): fastllm's list and numpy calls
    alike treat special tokens' text as ordinary text and do not search for it (gigatoken
    searches for specials in both, as it always recognizes them). The numpy round uses the
    next R+1 slices: a library's list and numpy calls share its caches, so on one text the
    second of the two would not be cold.
  - **worst**: ~1 MB that the split regex cannot cut (``'^'*n`` and ``'a'*n`` with a different
    n every round, and windows of the en corpus' letters with everything else removed, as they
    are and lowercased), one new text per round. A library whose cost at 25 and 50 KB predicts
    a call longer than a limit is skipped, and the table says so.

  Speeds are MB per CPU-second of the pinned process by default (``--clock cpu``): with one
  thread on one CPU that is what the wall time would be without other processes' load, and it
  stays steady on a shared, busy machine; ``--clock wall`` uses wall time (the JSON has both).

* batch: affinity to CPUs {0, 1}, ``RAYON_NUM_THREADS=2``, ``FASTOKENS_BPE_THREADS=2``: each
  library's batch call on batches of short lines (one line a text) and of 50 KB documents, from
  en alone and from a mix of all sub-corpora, cold and hot as above, in MB per wall second with
  the CPU utilisation of the call (process CPU time / wall time, all threads; the CPU time read
  once the threads are idle, see ``_settled_cpu_time``). Then the same with
  flat numpy output, on the next batches of each input (a library's two calls share its caches):
  fastllm ``encode_ordinary_batch_to_numpy``, fastokens ``encode_batch_flat`` and gigatoken
  ``Tokenizer.encode_batch`` (its awkward array's buffers), tiktoken's lists as the reference ids.

MB = 10**6 bytes of UTF-8 input. ``fastllm/best`` is the median over rounds of fastllm's speed
over that of the fastest exact peer (the one with the highest median) on the same text; above 1
fastllm is faster. The summary takes the geometric mean of it over the inputs. ``--train`` also
runs ``benches/bench_tokenizer_train.py`` (the trainer's section).
"""

from __future__ import annotations

import argparse
import array
import hashlib
import json
import math
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
SUBCORPUS_DIR = ROOT / "bench-data" / "tokenizer"
SUBCORPORA = ["en", "latin", "ja", "zh", "ru", "uk", "code-c", "code-py"]
QUICK_SUBCORPORA = ["en", "zh", "code-c"]
# encoding -> (shared vocab file, fastllm pattern, tiktoken_ext constructor, gigatoken pretokenizer)
ENCODINGS = {
    "gpt2": ("gpt2.tiktoken", "gpt2", "r50k_base", "gpt2"),
    "cl100k_base": ("cl100k_base.tiktoken", "cl100k", "cl100k_base", "cl100k"),
    "o200k_base": ("o200k_base.tiktoken", "o200k", "o200k_base", "o200k"),
}
# implementation -> (PyPI distribution, column label)
IMPLS = {
    "fastllm": ("fastllm", "fastllm"),
    "tiktoken": ("tiktoken", "tiktoken"),
    "hf": ("tokenizers", "HF"),
    "gigatoken": ("gigatoken", "gigatok"),
    "fastokens": ("fastokens", "fastoken"),
    "riptoken": ("riptoken", "riptoken"),
    "bpe-openai": ("bpe-openai", "bpe-oai"),
    "wordchipper": ("wordchipper", "wordchip"),
    "kitoken": ("kitoken", "kitoken"),
}
DOC_BYTES = 50_000


def cpu_model() -> str:
    """The CPU in words, e.g. "AMD EPYC (family 26, model 2)": the development VM has been an
    Intel Xeon and an AMD EPYC on different days, and cold numbers move with the caches."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():
                break  # the first CPU's block is enough
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def encoder_copy() -> str:
    """Which of fastllm's compiled copies of the encoder runs here ("x86-64-v3" or "portable")."""
    from fastllm import _core

    return _core.testing.encoder_copy()


def shared_data_dir() -> Path:
    for candidate in (os.environ.get("FASTLLM_SHARED_DATA", ""), str(ROOT.parent / "shared" / "data")):
        if candidate and Path(candidate, "gpt2.tiktoken").is_file():
            return Path(candidate)
    sys.exit("needs the real vocab files: set FASTLLM_SHARED_DATA to the folder holding gpt2.tiktoken etc.")


def settings(quick: bool, repeats: int | None) -> dict:
    """Sizes of everything, full or --quick."""
    if quick:
        return {"slice_kb": 32, "cold_rounds": repeats or 3, "hot_rounds": repeats or 3, "lines_kb": 64,
                "docs_per_batch": 3, "batch_inputs": ["mix"], "worst_kb": 100, "worst_rounds": 1,
                "worst_limit_s": 1.0}
    return {"slice_kb": 256, "cold_rounds": repeats or 7, "hot_rounds": repeats or 5, "lines_kb": 256,
            "docs_per_batch": 8, "batch_inputs": ["en", "mix"], "worst_kb": 1000, "worst_rounds": 2,
            "worst_limit_s": 20.0}


# ----- loading every implementation ------------------------------------------------------------


def _tiktoken_spec(ctor: str) -> dict:
    from tiktoken_ext import openai_public

    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *a, **k: {}  # only pat_str and special tokens are wanted
    try:
        return getattr(openai_public, ctor)()
    finally:
        openai_public.load_tiktoken_bpe = original


def _wordchipper_cache(data: Path, workdir: Path) -> Path:
    """wordchipper's from_pretrained reads WORDCHIPPER_CACHE_DIR/openai/<name>/<name>.tiktoken."""
    for ctor, (file_name, *_rest) in ((v[2], v) for v in ENCODINGS.values()):
        folder = workdir / "wordchipper" / "openai" / ctor
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / f"{ctor}.tiktoken"
        if not link.exists():
            link.symlink_to(data / file_name)
    return workdir / "wordchipper"


def load_impls(name: str, data: Path, workdir: Path, threads: int, peers: list[str]) -> tuple[dict, dict, dict]:
    """{impl: {"list": f(text), "numpy": f(text), "batch": f(texts), "_obj": the library's object}},
    {impl: why missing}, versions.

    Each library is used through its fastest call that returns token ids for ordinary text.
    """
    import functools
    from importlib import metadata

    import numpy as np

    file_name, pattern, ctor, giga_pre = ENCODINGS[name]
    path = str(data / file_name)
    spec = _tiktoken_spec(ctor)
    specials = spec["special_tokens"]
    impls: dict[str, dict] = {}
    missing: dict[str, str] = {}
    versions: dict[str, str] = {}

    def fastllm():
        from fastllm import Tokenizer

        ours = Tokenizer.from_tiktoken(path, pattern=pattern, special_tokens=specials, name=name)
        return {"list": ours.encode_ordinary, "numpy": ours.encode_ordinary_to_numpy,
                "batch": functools.partial(ours.encode_ordinary_batch, num_threads=threads),
                "batch_numpy": functools.partial(ours.encode_ordinary_batch_to_numpy, num_threads=threads),
                "_obj": ours}

    def tiktoken():
        import tiktoken as tt
        from tiktoken.load import load_tiktoken_bpe

        enc = tt.Encoding(name, pat_str=spec["pat_str"], mergeable_ranks=load_tiktoken_bpe(path), special_tokens=specials)
        return {"list": enc.encode_ordinary, "batch": functools.partial(enc.encode_ordinary_batch, num_threads=threads),
                "_obj": enc}

    def hf():
        import tokenizers

        hf_path = workdir / f"{name}.tokenizer.json"
        impls["fastllm"]["_obj"].to_hf_json(hf_path)
        tok = tokenizers.Tokenizer.from_file(str(hf_path))
        return {"list": lambda text: tok.encode(text, add_special_tokens=False).ids,
                "batch": lambda texts: [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)], "_obj": tok}

    def gigatoken():
        import gigatoken as gt

        tok = gt.Tokenizer.from_tiktoken(path, pretokenizer=giga_pre, special_tokens=specials)
        compat = tok.as_tiktoken()
        def flat(texts):  # its awkward array's two buffers, as they are
            layout = tok.encode_batch(texts).layout
            return layout.content.data, layout.offsets.data

        return {"list": compat.encode_ordinary, "numpy": tok.encode, "batch": compat.encode_ordinary_batch,
                "batch_numpy": flat, "_obj": tok}

    def fastokens():
        import fastokens as fk

        # Its presets spell the pattern the way its pre-tokenizer recognises (tiktoken's cl100k
        # `pat_str`, with possessive quantifiers, falls back to a regex at a third of the speed);
        # the ids are the same, and checked below. gpt2 has no preset.
        if ctor in ("cl100k_base", "o200k_base"):
            tok = fk.Tokenizer.from_tiktoken(path, encoding=ctor, special_tokens=specials)
        else:
            tok = fk.Tokenizer.from_tiktoken(path, pattern=spec["pat_str"], special_tokens=specials)
        return {"list": lambda text: tok.encode_ordinary(text).ids,
                "numpy": lambda text: np.frombuffer(tok.encode_batch_flat([text])[0], dtype=np.uint32),
                "batch": lambda texts: [e.ids for e in tok.encode_batch(texts)],
                "batch_numpy": lambda texts: tuple(np.frombuffer(b, dtype=t)
                                                   for b, t in zip(tok.encode_batch_flat(texts), (np.uint32, np.uint64))),
                "_obj": tok}

    def riptoken():
        import riptoken as rt

        core = rt.CoreBPE(rt.load_tiktoken_bpe(path), specials, spec["pat_str"])
        return {"list": core.encode_ordinary, "batch": core.encode_ordinary_batch, "_obj": core}

    def bpe_openai():
        import bpe_openai as bo

        enc = bo.get_encoding(name)  # its own copy of the official file; no gpt2/r50k_base
        # The Rust binding's encode: Encoding.encode_ordinary adds a UTF-8 check, a list copy and
        # refuses 1M characters or 200k tokens. Its batch call is its own (a thread pool).
        return {"list": enc._backend.encode,
                "batch": functools.partial(enc.encode_ordinary_batch, num_threads=threads), "_obj": enc}

    def wordchipper():
        import wordchipper as wc

        tok = wc.Tokenizer.from_pretrained(ctor)
        return {"list": tok.encode, "batch": tok.encode_batch, "_obj": tok}

    def kitoken():
        import kitoken as kt

        tok = kt.Kitoken.from_tiktoken_file(path)
        return {"list": tok.encode, "batch": tok.encode_all, "_obj": tok}

    loaders = {"fastllm": fastllm, "tiktoken": tiktoken, "hf": hf, "gigatoken": gigatoken, "fastokens": fastokens,
               "riptoken": riptoken, "bpe-openai": bpe_openai, "wordchipper": wordchipper, "kitoken": kitoken}
    for impl, loader in loaders.items():
        if impl not in ("fastllm", "tiktoken") and impl not in peers:
            continue
        dist = IMPLS[impl][0]
        try:
            versions[impl] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing[impl] = "not installed"
            continue
        try:
            started = time.perf_counter()
            impls[impl] = loader()
            impls[impl]["load_s"] = time.perf_counter() - started
        except Exception as err:  # a peer that cannot load this encoding is reported, not fatal
            missing[impl] = f"{type(err).__name__}: {str(err)[:120]}"
    for required in ("fastllm", "tiktoken"):
        if required not in impls:
            sys.exit(f"{required} could not be loaded: {missing.get(required)}")
    return impls, missing, versions


# ----- inputs ------------------------------------------------------------------------------------


def load_subcorpora(names: list[str], data: Path) -> tuple[dict[str, bytes], str]:
    """The sub-corpora as bytes; without bench-data/tokenizer, the two small shared texts."""
    found = {n: (SUBCORPUS_DIR / f"{n}.txt").read_bytes() for n in names if (SUBCORPUS_DIR / f"{n}.txt").is_file()}
    if found:
        missing = [n for n in names if n not in found]
        note = f"sub-corpora missing (left out): {missing}" if missing else ""
        return found, note
    note = (f"{SUBCORPUS_DIR} is missing: run benches/bench_tokenizer_corpus.py; "
            "using ../shared/data tinyshakespeare (as 'en') and multilingual.txt (as 'multi') instead")
    return {"en": (data / "tinyshakespeare.txt").read_bytes(), "multi": (data / "multilingual.txt").read_bytes()}, note


def cut(blob: bytes, count: int, size: int, start: int = 0) -> list[bytes]:
    """`count` consecutive pieces of about `size` bytes from blob[start:], each ending at a line end
    (so each decodes as UTF-8). Smaller pieces when the blob is too short for `count` full ones."""
    size = max(1, min(size, (len(blob) - start) // count))
    pieces, pos = [], start
    for _ in range(count):
        end = blob.find(b"\n", pos + size)
        end = len(blob) if end < 0 else end + 1
        pieces.append(blob[pos:end])
        pos = end
    return pieces


def _digest_ids(out) -> str:
    if hasattr(out, "dtype"):
        import numpy as np

        data = np.ascontiguousarray(out, dtype=np.uint32).tobytes()
    else:
        data = array.array("I", out).tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _digest_batch(out) -> str:
    """A fingerprint of a batch's ids: lists of ids, or a flat (ids, offsets) pair (the same for both)."""
    if isinstance(out, tuple) and len(out) == 2 and hasattr(out[0], "dtype"):
        return _digest_flat(out)
    h = hashlib.blake2b(digest_size=16)
    for ids in out:
        h.update(len(ids).to_bytes(8, "little"))
        h.update(array.array("I", ids).tobytes())
    return h.hexdigest()


def _digest_flat(out) -> str:
    """`_digest_batch` of a flat batch: (ids, offsets), text i's ids at ids[offsets[i]:offsets[i + 1]]."""
    import numpy as np

    ids, offsets = out
    ids = np.ascontiguousarray(ids, dtype=np.uint32)
    offsets = np.asarray(offsets).tolist()
    h = hashlib.blake2b(digest_size=16)
    for a, b in zip(offsets[:-1], offsets[1:]):
        h.update((b - a).to_bytes(8, "little"))
        h.update(ids[a:b].tobytes())
    return h.hexdigest()


# ----- the measurements ------------------------------------------------------------------------


def _settled_cpu_time() -> float:
    """The process's CPU time (all threads) once its other threads are idle. Linux adds a
    thread's time running on another CPU to the process's only at the next scheduler tick
    or when it stops, so read right after a batch call of a few milliseconds it missed part of
    the pool threads' work (utilisation read 1.1 and 3.0 CPUs in turn on 2 CPUs, and the next
    call was charged the rest). Waits, a millisecond at a time, until a wait sees no CPU time
    spent (any spinning of the pool threads after the call counts: it is the call's), at most
    50 ms."""
    c = time.process_time()
    for _ in range(50):
        time.sleep(0.001)
        c, before = time.process_time(), c
        if c - before < 2e-4:
            break
    return c


def _timed(fn, arg):
    """fn(arg), its wall seconds, and its process CPU seconds (all threads, see
    `_settled_cpu_time`; the wait is outside the wall time)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(arg)
    t1 = time.perf_counter()
    c1 = _settled_cpu_time()
    return out, t1 - t0, max(c1 - c0, 1e-9)


def cold_and_hot(variants: dict, pieces: list, cold_rounds: int, hot_rounds: int, fresh, digest) -> dict:
    """Per variant: MB/s of every cold and hot round by wall and by CPU time, CPU utilisation,
    and whether the ids equal tiktoken's.

    `pieces`: cold_rounds + 1 inputs (bytes, or lists of bytes for batches): in cold round r
    every variant encodes its own fresh copy of pieces[r] (`fresh(piece)` makes new Python
    strings), in an order rotated by r; the last piece is the warm-up and hot input.
    `digest(output)` fingerprints an output, to compare it with tiktoken's.
    """
    names = list(variants)
    n = len(names)
    assert len(pieces) == cold_rounds + 1
    sizes = [sum(map(len, p)) if isinstance(p, list) else len(p) for p in pieces]
    cells = {v: {"cold": {"wall": [], "cpu": [], "util": []}, "hot": {"wall": [], "cpu": [], "util": []}}
             for v in names}
    digests = {v: {} for v in names}

    def record(v, phase, size, wall, cpu):
        cells[v][phase]["wall"].append(size / 1e6 / wall)
        cells[v][phase]["cpu"].append(size / 1e6 / cpu)
        cells[v][phase]["util"].append(cpu / wall)

    hot_inputs = {v: fresh(pieces[-1]) for v in names}
    for v in names:  # warm-up: first calls, lazy initialisation; the hot input's first encoding
        digests[v]["hot"] = digest(variants[v](hot_inputs[v]))
    for r in range(cold_rounds):  # cold: every variant encodes piece r once, a fresh string each
        for j in range(n):
            v = names[(j + r) % n]
            arg = fresh(pieces[r])
            out, wall, cpu = _timed(variants[v], arg)
            record(v, "cold", sizes[r], wall, cpu)
            digests[v][r] = digest(out)
            out = arg = None
    for r in range(hot_rounds):
        for j in range(n):
            v = names[(j + r) % n]
            out, wall, cpu = _timed(variants[v], hot_inputs[v])
            record(v, "hot", sizes[-1], wall, cpu)
            out = None
    reference = digests.get("tiktoken")
    for v in names:
        cells[v]["same"] = None if reference is None else digests[v] == reference
    cells["_bytes"] = {"cold_mean": statistics.mean(sizes[:-1]), "hot": sizes[-1]}
    return cells


def _text_of(piece: bytes) -> str:
    return piece.decode("utf-8")


def _texts_of(piece: list) -> list[str]:
    return [p.decode("utf-8") for p in piece]


def rank(cells: dict, phase: str, clock: str) -> dict:
    """fastllm against the exact peer with the highest median MB/s in `phase` ("cold", "hot",
    "worst") by `clock` ("wall" or "cpu"): the ratio is the median over rounds of fastllm's
    MB/s over that peer's in the same round (the same text in both)."""
    def median(c):
        return statistics.median(c[phase][clock])

    measured = {k: c for k, c in cells.items() if isinstance(c, dict) and phase in c}
    exact = {k: c for k, c in measured.items() if k != "fastllm" and c["same"]}
    result = {"phase": phase, "clock": clock, "peer": None, "ratio": None}
    if "fastllm" in measured:
        result["fastllm_mb_s"] = median(measured["fastllm"])
    if exact:
        peer = max(exact, key=lambda k: median(exact[k]))
        result.update(peer=peer, peer_mb_s=median(exact[peer]))
        if "fastllm" in measured:
            pairs = zip(measured["fastllm"][phase][clock], exact[peer][phase][clock])
            result["ratio"] = statistics.median(f / p for f, p in pairs)
    return result


def _cell(entry: dict | None, phase: str, clock: str, util: bool, wide: int) -> str:
    if entry is None:
        return f"{'-':>{wide}}"
    if "skipped" in entry:
        return f"{'skip':>{wide}}"
    text = f"{statistics.median(entry[phase][clock]):.1f}"
    if util:
        text += f"/{statistics.median(entry[phase]['util']):.2f}"
    return f"{text + ('' if entry['same'] else '*'):>{wide}}"


def print_header(title: str, columns: list[str], util: bool = False) -> None:
    wide = 12 if util else 9
    print(f"\n{title}")
    print(f"{'input':<20}" + "".join(f"{IMPLS[c][1] if c in IMPLS else c:>{wide}}" for c in columns)
          + f"  {'best peer':<9} {'fastllm/best':>12}", flush=True)


def print_rows(label: str, cells: dict, columns: list[str], phases: list[str], clock: str,
               util: bool = False) -> dict:
    """One line per phase of one input; returns {phase: rank(...)}."""
    ranks = {}
    for phase in phases:
        wide = 12 if util else 9
        line = f"{(label + ' ' + phase).strip():<20}" + "".join(_cell(cells.get(c), phase, clock, util, wide)
                                                               for c in columns)
        ranks[phase] = r = rank(cells, phase, clock)
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        line += f"  {IMPLS[r['peer']][1] if r['peer'] else '-':<9} {ratio:>12}"
        print(line, flush=True)
    return ranks


def run_single(name: str, conf: dict, data: Path, workdir: Path, corpora: dict, sections: set) -> dict:
    impls, missing, versions = load_impls(name, data, workdir, threads=1, peers=conf["peers"])
    clock = conf["clock"]
    out = {"encoding": name, "mode": "single", "clock": clock, "missing": missing, "versions": versions,
           "load_s": {k: v["load_s"] for k, v in impls.items()}, "rows": [], "numpy_rows": [], "worst": []}
    list_variants = {impl: fns["list"] for impl, fns in impls.items()}
    numpy_variants = {impl: fns["numpy"] for impl, fns in impls.items() if "numpy" in fns}
    if missing:
        print(f"[{name}] not measured: " + "; ".join(f"{k} ({v})" for k, v in missing.items()))
    unit = "MB per CPU-second" if clock == "cpu" else "MB/s"
    if "single" in sections:
        # List and numpy outputs encode different slices: a library's two variants share its
        # cross-call caches, so on the same text whichever ran second would not be cold.
        numpy_run = {"tiktoken": list_variants["tiktoken"]}  # the reference for the numpy ids
        numpy_run.update({f"{k}:numpy": v for k, v in numpy_variants.items()})
        columns = list(list_variants)
        print_header(f"[{name}] one thread, list output, {unit}; cold = text not seen before, hot = the same "
                     f"text again (medians of {conf['cold_rounds']} cold and {conf['hot_rounds']} hot rounds)", columns)
        for corpus, blob in corpora.items():
            m = conf["cold_rounds"] + 1
            pieces = cut(blob, 2 * m, conf["slice_kb"] * 1000)
            res = cold_and_hot(list_variants, pieces[:m], conf["cold_rounds"], conf["hot_rounds"], _text_of,
                               _digest_ids)
            nres = cold_and_hot(numpy_run, pieces[m:], conf["cold_rounds"], conf["hot_rounds"], _text_of,
                                _digest_ids)
            lists = {k: res[k] for k in list_variants}
            arrays = {k: nres[f"{k}:numpy"] for k in numpy_variants}
            ranks = print_rows(f"{corpus} {res['_bytes']['cold_mean'] / 1e3:.0f}K", lists, columns, ["cold", "hot"], clock)
            out["rows"].append({"corpus": corpus, "bytes": res["_bytes"], "cells": lists, "rank": ranks})
            out["numpy_rows"].append({"corpus": corpus, "bytes": nres["_bytes"], "cells": arrays,
                                      "rank": {p: rank(arrays, p, clock) for p in ("cold", "hot")}})
        columns = list(numpy_variants)
        print_header(f"[{name}] one thread, numpy output (fastllm encode_ordinary_to_numpy, gigatoken Tokenizer.encode, "
                     f"fastokens encode_batch_flat + numpy.frombuffer), {unit}, the next slices of each corpus", columns)
        for row in out["numpy_rows"]:
            print_rows(row["corpus"], row["cells"], columns, ["cold", "hot"], clock)
    if "worst" in sections:
        out["worst"] = run_worst(name, list_variants, conf, corpora.get("en") or next(iter(corpora.values())))
        en_row = next((row for row in out["rows"] if row["corpus"] == "en"), None)
        if en_row:  # per-byte cost of each worst input relative to the same library's on en text (cold)
            print(f"per-byte cost relative to the same library's on cold en text ({clock} time):")
            for row in out["worst"]:
                row["cost_vs_en"] = {
                    impl: statistics.median(en_row["cells"][impl]["cold"][clock]) / statistics.median(c["worst"][clock])
                    for impl, c in row["cells"].items() if "worst" in c and impl in en_row["cells"]}
                print(f"  {row['input']:<10} " + ", ".join(f"{IMPLS[k][1]} {v:.1f}x" for k, v in row["cost_vs_en"].items()))
    if "single" in sections and "fastllm" in impls:
        # Last: two more tokenizers on this thread push the first one's piece cache out.
        out["numpy_vs_list"] = numpy_vs_list(name, data, conf, corpora, clock)
    return out


def numpy_vs_list(name: str, data: Path, conf: dict, corpora: dict, clock: str) -> list[dict]:
    """fastllm's numpy output against its own list output on the same cold text. The tables above
    give them different slices (a library's two calls share its caches), so their ratio mixes in
    how hard each slice is. Here two new tokenizers, each with its own piece cache, encode the list
    rounds' cold slices, new to both, each slice by both, the order alternating; per input, the
    median over the slices of the list call's time over the numpy call's (above 1: numpy faster)."""
    from fastllm import Tokenizer

    file_name, pattern, ctor, _ = ENCODINGS[name]
    specials = _tiktoken_spec(ctor)["special_tokens"]

    def make():
        return Tokenizer.from_tiktoken(data / file_name, pattern=pattern, special_tokens=specials, name=name)

    calls = {"list": make().encode_ordinary, "numpy": make().encode_ordinary_to_numpy}
    index = 1 if clock == "wall" else 2
    rows = []
    for corpus, blob in corpora.items():
        m = conf["cold_rounds"] + 1
        pieces = cut(blob, 2 * m, conf["slice_kb"] * 1000)
        for call in calls.values():  # first calls (lazy set-up) on the warm-up slice of the list rounds
            call(_text_of(pieces[m - 1]))
        ratios = []
        for r in range(m - 1):
            seconds = {}
            for kind in (("list", "numpy") if r % 2 == 0 else ("numpy", "list")):
                seconds[kind] = _timed(calls[kind], _text_of(pieces[r]))[index]
            ratios.append(seconds["list"] / seconds["numpy"])
        rows.append({"corpus": corpus, "ratios": ratios, "median": statistics.median(ratios)})
    print(f"[{name}] fastllm numpy output over list output, the same cold text ({clock} time): "
          + ", ".join(f"{row['corpus']} {row['median']:.2f}" for row in rows))
    return rows


def run_worst(name: str, variants: dict, conf: dict, en: bytes) -> list[dict]:
    """~1 MB that the split regex cannot cut. Round r has every library encode text r (a fresh
    string each), and the texts of different rounds differ, so no library sees one twice."""
    n_bytes = conf["worst_kb"] * 1000
    rounds = conf["worst_rounds"]
    clock = conf["clock"]
    letters = re.sub(r"[^A-Za-z]", "", en.decode("utf-8"))
    probe_letters, letters = letters[:50_000], letters[50_000:]
    per_call = min(n_bytes, len(letters) // rounds)
    windows = [letters[r * per_call:(r + 1) * per_call] for r in range(rounds)]
    inputs = [  # (label, probe text of `size` characters, text of round r)
        ("'^'*n", lambda size: "^" * size, lambda r: "^" * (n_bytes - 1 - r)),  # a different length each round
        ("'a'*n", lambda size: "a" * size, lambda r: "a" * (n_bytes - 1 - r)),
        ("letters", lambda size: probe_letters[:size], lambda r: windows[r]),
        ("lowercase", lambda size: probe_letters[:size].lower(), lambda r: windows[r].lower()),
    ]
    rows = []
    columns = list(variants)
    print_header(f"[{name}] worst case, one thread, {'MB per CPU-second' if clock == 'cpu' else 'MB/s'}, on "
                 f"~{n_bytes / 1e6:.1f} MB the split regex cannot cut (letters of en: {per_call / 1e6:.2f} MB; "
                 f"median of {rounds} rounds, a new text each)", columns)
    for label, probe_text, round_text in inputs:
        cells = {}
        active = []
        for impl, fn in variants.items():
            # the cost at 25 and 50 KB predicts the full size's, with the measured growth exponent
            probe = []
            for size in (25_000, 50_000):  # the better of two calls: one hiccup must not skip a library
                probe.append(min(_timed(fn, probe_text(size))[2] for _ in range(2)))
            exponent = min(2.5, max(1.0, math.log2(probe[1] / probe[0])))
            predicted = probe[1] * (n_bytes / 50_000) ** exponent
            if impl not in ("fastllm", "tiktoken") and predicted > conf["worst_limit_s"] and probe[1] > 0.005:
                cells[impl] = {"skipped": f"predicted {predicted:.0f} s a call (50 KB: {probe[1] * 1e3:.0f} ms, "
                                          f"growth ~n^{exponent:.1f})", "same": None}
            else:
                active.append(impl)
                cells[impl] = {"worst": {"wall": [], "cpu": [], "util": []}}
        digests = {impl: [] for impl in active}
        for r in range(rounds):
            base = round_text(r)
            for j in range(len(active)):
                impl = active[(j + r) % len(active)]
                text = (base + ".")[:-1]  # a fresh copy
                ids, wall, cpu = _timed(variants[impl], text)
                cells[impl]["worst"]["wall"].append(len(text) / 1e6 / wall)  # ASCII: characters are bytes
                cells[impl]["worst"]["cpu"].append(len(text) / 1e6 / cpu)
                cells[impl]["worst"]["util"].append(cpu / wall)
                digests[impl].append(_digest_ids(ids))
                ids = text = None
        for impl in active:
            cells[impl]["same"] = digests[impl] == digests["tiktoken"]
        ranks = print_rows(label, cells, columns, ["worst"], clock)
        rows.append({"input": label, "bytes": n_bytes if label.startswith("'") else per_call, "cells": cells,
                     "rank": ranks})
        for impl, c in cells.items():
            if "skipped" in c:
                print(f"    {impl}: skipped, {c['skipped']}")
    return rows


def run_batch(name: str, conf: dict, data: Path, workdir: Path, corpora: dict, threads: int) -> dict:
    impls, missing, versions = load_impls(name, data, workdir, threads=threads, peers=conf["peers"])
    variants = {impl: fns["batch"] for impl, fns in impls.items() if "batch" in fns}
    # Flat numpy outputs, with tiktoken's lists as the reference for the ids.
    flat_variants = {"tiktoken": variants["tiktoken"]}
    flat_variants.update({impl: fns["batch_numpy"] for impl, fns in impls.items() if "batch_numpy" in fns})
    out = {"encoding": name, "mode": "batch", "threads": threads, "missing": missing, "versions": versions, "rows": [],
           "numpy_rows": []}
    m = conf["cold_rounds"] + 1
    inputs = {}
    # en alone, and a mix with an equal share of every sub-corpus; batches 0..m-1 for the lists,
    # m..2m-1 for the numpy outputs (a library's two calls share its caches: both must be cold)
    for label, blobs in (("en", {"en": corpora["en"]} if "en" in corpora else {}), ("mix", corpora)):
        if not blobs or label not in conf["batch_inputs"]:
            continue
        lines = [[] for _ in range(2 * m)]
        docs = [[] for _ in range(2 * m)]
        share = conf["lines_kb"] * 1000 // len(blobs)
        doc_share = max(1, conf["docs_per_batch"] // len(blobs))
        for blob in blobs.values():
            # batch k of lines from the k-th region, of documents from a region after all the lines
            line_regions = cut(blob, 2 * m, share)
            start = sum(map(len, line_regions))
            if start + 2 * m * doc_share * DOC_BYTES * 1.05 > len(blob):
                start = 0  # a short corpus: documents overlap the lines (another process, so still unseen)
            doc_regions = cut(blob, 2 * m, doc_share * DOC_BYTES, start)
            for k in range(2 * m):
                lines[k] += line_regions[k].splitlines(keepends=True)
                docs[k] += cut(doc_regions[k], doc_share, DOC_BYTES)
        inputs[f"{label} lines"] = lines
        inputs[f"{label} 50KB docs"] = docs
    for table, runs, rows in (("lists", variants, out["rows"]), ("numpy", flat_variants, out["numpy_rows"])):
        columns = list(runs)
        what = ("list of lists" if table == "lists" else
                "flat numpy ids and offsets (fastllm encode_ordinary_batch_to_numpy, fastokens encode_batch_flat, "
                "gigatoken encode_batch; tiktoken's lists for reference), the next batches of each input")
        print_header(f"[{name}] batch calls on {threads} threads, {what}: MB/s / CPU utilisation (process CPU "
                     f"time / wall); medians of {conf['cold_rounds']} cold and {conf['hot_rounds']} hot rounds",
                     columns, util=True)
        for label, pieces in inputs.items():
            pieces = pieces[:m] if table == "lists" else pieces[m:]
            res = cold_and_hot(runs, pieces, conf["cold_rounds"], conf["hot_rounds"], _texts_of, _digest_batch)
            cells = {k: res[k] for k in runs}
            docs_count = statistics.mean(len(p) for p in pieces)
            print(f"{label}: {docs_count:.0f} texts, ~{res['_bytes']['cold_mean'] / 1e3:.0f} KB a batch")
            ranks = print_rows("", cells, columns, ["cold", "hot"], "wall", util=True)
            rows.append({"input": label, "docs_per_batch": docs_count, "bytes": res["_bytes"], "cells": cells,
                         "rank": ranks, "rank_cpu": {p: rank(cells, p, "cpu") for p in ("cold", "hot")}})
    return out


# ----- the parent: subprocesses, summary, JSON ---------------------------------------------------


def child_main(args) -> int:
    conf = settings(args.quick, args.repeats)
    conf["peers"] = args.peers.split(",")
    conf["clock"] = args.clock
    data = shared_data_dir()
    names = [c for c in args.corpora.split(",") if c]
    corpora, note = load_subcorpora(names, data)
    if note:
        print(f"({note})")
    sections = set(args.sections.split(","))
    with tempfile.TemporaryDirectory() as workdir:
        if args.child == "single":
            result = run_single(args.encodings, conf, data, Path(workdir), corpora, sections)
        else:
            result = run_batch(args.encodings, conf, data, Path(workdir), corpora, args.threads)
    result["corpora"] = {k: len(v) for k, v in corpora.items()}
    result["corpus_note"] = note
    Path(args.child_out).write_text(json.dumps(result))
    return 0


def spawn(mode: str, encoding: str, args, cpus: set[int], threads: int, out_path: Path, workdir: Path) -> dict | None:
    env = dict(os.environ)
    env.update({"RAYON_NUM_THREADS": str(threads), "FASTOKENS_BPE_THREADS": str(threads),
                "WORDCHIPPER_CACHE_DIR": str(_wordchipper_cache(shared_data_dir(), workdir))})
    argv = [sys.executable, __file__, "--child", mode, "--encodings", encoding, "--child-out", str(out_path),
            "--corpora", args.corpora, "--sections", args.sections, "--threads", str(threads), "--peers", args.peers,
            "--clock", args.clock]
    argv += ["--quick"] if args.quick else []
    argv += ["--repeats", str(args.repeats)] if args.repeats else []
    started = time.perf_counter()
    rc = subprocess.call(argv, env=env, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    if rc != 0 or not out_path.is_file():
        print(f"({mode} {encoding}: the subprocess failed, rc={rc})", file=sys.stderr)
        return None
    result = json.loads(out_path.read_text())
    result["wall_s"] = time.perf_counter() - started
    return result


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def summary(results: list[dict]) -> list[str]:
    lines = ["\n== summary: fastllm / the fastest exact peer (geometric mean over the inputs of the median "
             "paired ratio; above 1: fastllm faster) =="]
    for res in results:
        enc = res["encoding"]
        if res["mode"] == "single":
            for table, rows in (("list", res["rows"]), ("numpy", res["numpy_rows"])):
                for phase in ("cold", "hot"):
                    ranks = [row["rank"][phase] for row in rows if row["rank"][phase]["ratio"]]
                    if not ranks:
                        continue
                    peers = {}
                    for r in ranks:
                        peers[r["peer"]] = peers.get(r["peer"], 0) + 1
                    walls = [rank(row["cells"], phase, "wall")["ratio"] for row in rows]
                    lines.append(f"{enc:<12} one thread {table:<5} {phase:<4}: {geomean([r['ratio'] for r in ranks]):5.2f}"
                                 f" by {res['clock']} time ({geomean(walls):.2f} by wall time); fastest peer: "
                                 f"{', '.join(f'{k} on {v}' for k, v in sorted(peers.items()))}")
            pairs = res.get("numpy_vs_list") or []
            if pairs:
                medians = [row["median"] for row in pairs]
                lines.append(f"{enc:<12} fastllm numpy / list, same cold text: {geomean(medians):.2f} "
                             f"(by input {min(medians):.2f}-{max(medians):.2f})")
            for row in res["worst"]:
                r = row["rank"]["worst"]
                if r["ratio"]:
                    lines.append(f"{enc:<12} worst {row['input']:<16}: {r['ratio']:5.2f}  vs {r['peer']}")
        else:
            for table, rows in (("lists", res["rows"]), ("numpy", res.get("numpy_rows", []))):
                for row in rows:
                    r = row["rank"]["cold"]
                    if r["ratio"]:
                        cells = row["cells"]
                        util = statistics.median(cells["fastllm"]["cold"]["util"])
                        peer_util = statistics.median(cells[r["peer"]]["cold"]["util"])
                        lines.append(f"{enc:<12} batch {table:<5} {row['input']:<14} cold: {r['ratio']:5.2f} vs "
                                     f"{r['peer']} (fastllm {r['fastllm_mb_s']:.1f} MB/s on {util:.2f} CPUs, "
                                     f"{r['peer']} {r['peer_mb_s']:.1f} on {peer_util:.2f})")
            lists = {row["input"]: row for row in res["rows"]}
            for row in res.get("numpy_rows", []):
                if row["input"] in lists:
                    flat = statistics.median(row["cells"]["fastllm"]["cold"]["wall"])
                    listed = statistics.median(lists[row["input"]]["cells"]["fastllm"]["cold"]["wall"])
                    lines.append(f"{enc:<12} fastllm batch numpy / lists, {row['input']:<14}: {flat / listed:.2f} "
                                 f"(medians, different batches of the same input)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"small slices, sub-corpora {','.join(QUICK_SUBCORPORA)}, o200k_base and cl100k_base")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--repeats", type=int, default=None,
                        help="cold and hot rounds (median; default 7 cold and 5 hot, quick 3 and 3)")
    parser.add_argument("--encodings", default=None, help=f"comma-separated, of {','.join(ENCODINGS)} "
                        "(default cl100k_base,o200k_base)")
    parser.add_argument("--corpora", default=None, help=f"comma-separated sub-corpora (default {','.join(SUBCORPORA)})")
    parser.add_argument("--sections", default=None, help="comma-separated subset of single,batch,worst "
                        "(default all; quick: single,batch)")
    parser.add_argument("--peers", default=None, help=f"comma-separated subset of {','.join(list(IMPLS)[1:])} "
                        "(tiktoken always runs: it is the reference; default all; quick: all but hf)")
    parser.add_argument("--train", action="store_true", help="also run the training benchmark")
    parser.add_argument("--threads", type=int, default=2, help="threads of the batch section (default 2)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="one-thread sections: MB per CPU-second of the pinned process (default: robust "
                        "to other processes' load) or MB per wall second; batches are always by wall time")
    parser.add_argument("--child", choices=["single", "batch"], help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.corpora = args.corpora or ",".join(QUICK_SUBCORPORA if args.quick else SUBCORPORA)
    args.sections = args.sections or ("single,batch" if args.quick else "single,batch,worst")
    args.peers = args.peers or ",".join(p for p in list(IMPLS)[1:] if not (args.quick and p == "hf"))
    if args.child:
        os.sched_setaffinity(0, set(range(args.threads)) if args.child == "batch" else {0})
        return child_main(args)
    args.encodings = args.encodings or "cl100k_base,o200k_base"
    names = [n for n in args.encodings.split(",") if n]
    unknown = [n for n in names if n not in ENCODINGS]
    if unknown:
        parser.error(f"unknown encodings {unknown}; choose from {list(ENCODINGS)}")
    sections = set(args.sections.split(","))
    if sections - {"single", "batch", "worst"}:
        parser.error("--sections takes single, batch, worst")
    cpus = sorted(os.sched_getaffinity(0))
    started = time.perf_counter()
    load = os.getloadavg()
    conf = settings(args.quick, args.repeats)
    conf["peers"] = args.peers.split(",")
    conf["clock"] = args.clock
    cpu, copy = cpu_model(), encoder_copy()
    print(f"{platform.node() or 'this machine'}: {os.cpu_count()} CPUs ({cpu}; fastllm's {copy} encoder), load "
          f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {'quick' if args.quick else 'full'} run: {json.dumps(conf)}")
    print("MB = 10**6 bytes of UTF-8 input; '*' after a number: ids differ from tiktoken's (listed, not "
          "ranked); '-': not available; fastllm/best: median over rounds of fastllm's speed over the fastest "
          "exact peer's on the same text")
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        for name in names:
            if sections & {"single", "worst"}:
                res = spawn("single", name, args, {cpus[0]}, 1, work / f"{name}.single.json", work)
                results += [res] if res else []
            if "batch" in sections:
                threads = min(args.threads, len(cpus))
                res = spawn("batch", name, args, set(cpus[:threads]), threads, work / f"{name}.batch.json", work)
                results += [res] if res else []
    for line in summary(results):
        print(line)
    load_end = os.getloadavg()
    wall = time.perf_counter() - started
    print(f"\nwall time {wall:.0f} s; load average at the end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    train = run_train_section(args.quick, args.json) if args.train else None
    if args.json:
        versions = {}
        for res in results:
            versions.update(res["versions"])
        payload = {"benchmark": "tokenizer encode vs peers", "argv": sys.argv[1:], "settings": conf,
                   "machine": {"cpus": os.cpu_count(), "cpu": cpu, "encoder": copy, "platform": platform.platform(),
                               "python": platform.python_version(),
                               "load_start": load, "load_end": load_end},
                   "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "wall_s": wall,
                   "versions": versions, "results": results, "train": train}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")
    failed = [r for r in results for row in r.get("rows", []) + r.get("numpy_rows", []) + r.get("worst", [])
              if "fastllm" in row["cells"] and not row["cells"]["fastllm"]["same"]]
    if len(results) < len(names) * (bool(sections & {"single", "worst"}) + ("batch" in sections)) or failed:
        print("\nERROR: a subprocess failed, or fastllm's ids differ from tiktoken's somewhere", file=sys.stderr)
        return 1
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
