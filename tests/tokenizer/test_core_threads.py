"""One CoreBPE shared by many threads: same results, GIL released."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


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
