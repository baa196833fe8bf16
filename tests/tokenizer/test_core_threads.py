"""One CoreBPE shared by many threads: same results, GIL released."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.text_strategies import tricky_text


def test_concurrent_use_gives_the_same_results(pair, corpora):
    text = corpora["multilingual.txt"]
    chunks = [text[i : i + 50_000] for i in range(0, 400_000, 50_000)]
    expected = [pair.core.encode_ordinary(c) for c in chunks]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(pair.core.encode_ordinary, chunks))
        decoded = list(pool.map(pair.core.decode_bytes, got))
        batches = list(pool.map(lambda c: pair.core.encode_ordinary_batch(c.splitlines(), num_threads=2), chunks[:2]))
    assert got == expected
    assert decoded == [c.encode() for c in chunks]
    assert batches == [[pair.core.encode_ordinary(x) for x in c.splitlines()] for c in chunks[:2]]


def test_batch_thread_counts_agree(pair, corpora):
    lines = corpora["tinyshakespeare.txt"].splitlines()[:2000]
    one = pair.core.encode_batch(lines, num_threads=1)
    assert one == pair.core.encode_batch(lines) == pair.core.encode_batch(lines, num_threads=3)
    assert one == [pair.core.encode(x) for x in lines]


# A batch cuts a long text into parts its threads share, before a newline that follows a letter,
# where the built-in patterns' pieces stop anyway: each text's ids must be those of the whole.
def test_long_texts_in_a_batch_keep_their_ids(pair, corpora):
    multilingual, shakespeare = corpora["multilingual.txt"], corpora["tinyshakespeare.txt"]
    texts = [multilingual[:300_000], "a line\n", shakespeare[:120_000], multilingual[300_000:360_000],
             "12 34\n" * 20_000, shakespeare[120_000:125_000] + "x\r\n  \n\n" * 5_000]
    for threads in (2, 3):
        assert pair.core.encode_ordinary_batch(texts, num_threads=threads) == [pair.ref.encode_ordinary(t) for t in texts]
    # encode_batch cuts them too: special tokens are found where they are, one before a cut's
    # newline included, and a disallowed one is an error naming the first in its text.
    special = "<|endoftext|>"
    marked = [t.replace("e\n", "e" + special + "\n", 50).replace(". ", ". " + special, 50) for t in texts]
    assert sum(special in t for t in marked) >= 4
    want = [pair.ref.encode(t, allowed_special="all") for t in marked]
    assert pair.core.encode_batch(marked, allowed_special="all", num_threads=2) == want
    with pytest.raises(ValueError, match="endoftext"):
        pair.core.encode_batch(marked, num_threads=2)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(tricky_text, min_size=1, max_size=30), size=st.integers(40_000, 90_000))
def test_long_random_texts_in_a_batch_keep_their_ids(pairs, lines, size):
    # Lines of random text, cycled to a text long enough to be cut (at least two parts of 16 KB).
    joined = "\n".join(lines) + "\n"
    text = (joined * (size // max(len(joined), 1) + 1))[:size]
    texts = [text, text[::-1]]
    for pair in pairs.values():
        assert pair.core.encode_ordinary_batch(texts, num_threads=2) == [pair.ref.encode_ordinary(t) for t in texts]


# Without num_threads a batch runs on the pool of one thread per CPU (or RAYON_NUM_THREADS) that
# explicit counts use, whose threads are pinned apart for their wake-up (rust/src/encode_pool.rs);
# it ran on rayon's global pool, unpinned, before. Thread names ("fastllm-encode-N-k", cut to 15
# characters by the kernel) tell the pools apart, in a fresh process.
_COUNT_POOL_THREADS = """
import os, sys, time
from fastllm import _core
core = _core.CoreBPE([bytes([b]) for b in range(256)], {}, "o200k")
assert core.encode_ordinary_batch(["a line\\n"] * 5000) == [list(b"a line\\n")] * 5000
expected = int(sys.argv[1])
# A pool thread names itself once it first runs: on a busy machine one that got no task may not
# have run yet when the batch returns, so the count is read again for up to two seconds.
for _ in range(40):
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    count = sum(name == "fastllm-encode-" for name in names)
    if count == expected:
        break
    time.sleep(0.05)
print(count)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads thread names from /proc (Linux)")
@pytest.mark.parametrize("env", [{}, {"RAYON_NUM_THREADS": "3"}])
def test_a_batch_without_a_thread_count_uses_the_pinned_pool(env):
    cpus = int(env.get("RAYON_NUM_THREADS", 0)) or len(os.sched_getaffinity(0))
    # One CPU: the batch runs on the calling thread, no pool.
    expected = cpus if cpus > 1 else 0
    run = subprocess.run([sys.executable, "-c", _COUNT_POOL_THREADS, str(expected)], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "RAYON_NUM_THREADS"} | env)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) == expected
