"""The encoder's fast paths against tiktoken: each must give the ids the plain algorithm gives.

* the per-text piece cache (texts of 4 KB and more): repeated pieces, cache hits and misses,
  pieces replaced in a full cache;
* the merge paths by piece length: short pieces, heap merge (17 bytes to 2 KB), rank-bucket
  queue (2 KB and more), each through the merge table of (left, right) token pairs, and words
  merged from atoms (byte pairs and characters BPE provably makes first);
* the shared int objects of returned lists, and the numpy output.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.text_strategies import piece, tricky_text

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Alphabets whose letters run into long pieces (no split inside a run of them).
RUN_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz",
    "etaoinshrdlu",
    "абвгдежзийклмнопрстуфхцчшщыьэюя",
    "日本語の文章です中文字符串ひらがなカタカナ",
    "กขคงจฉชซญดตถทนบปผพฟมยรลวศสหอะาิีึืุู",
    "अआइईउऊएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह्ािीुूेैोौं",
]


@st.composite
def long_runs(draw):
    """Text with letter runs of 1 to ~3000 bytes, so every merge path is taken."""
    alphabet = draw(st.sampled_from(RUN_ALPHABETS))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        n = rng.choice([1, 3, 8, 15, 16, 17, 40, 127, 128, 129, 600, 2047, 2048, 2049, 3000]) // (
            len(alphabet[0].encode()) or 1
        )
        run = "".join(rng.choice(alphabet) for _ in range(max(n, 1)))
        if rng.random() < 0.3:  # a repeated unit: equal ranks everywhere, ties broken leftmost
            run = (run[: rng.randint(1, 4)] * len(run))[: len(run)]
        parts.append(run)
    return draw(st.sampled_from([" ", "", "\n", "1"])).join(parts)


@SETTINGS
@given(text=long_runs())
def test_long_pieces_match_tiktoken(pairs, text):
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name


#: Letters of two and three bytes in UTF-8 (characters that may start merging as one part).
MULTI_BYTE_LETTERS = "日本語の文章です中文字符串ひらがなカタカナ한국어कारय" "àáâãäçèéêëíîñóôöøúüßāčęłńőśšżžαβγδεικλμνοπρστωабвгдежзийклмнопрстуфхцчшщъыьэюяёіїєאבגדהוזחטילמנסעפצקרשתابتثجحخدذرزسشصطعغفقكلمنهوي"


@st.composite
def multi_byte_words(draw):
    """Words of two- and three-byte letters and ASCII ones, up to and past 16 parts, after
    spaces, digits, letters and punctuation: the merge starts from whole characters and byte
    pairs where it may, and the bytes around them decide whether it may."""
    words = draw(st.lists(st.text(alphabet=MULTI_BYTE_LETTERS + "abet'", min_size=1, max_size=24), min_size=1, max_size=12))
    seps = draw(st.lists(st.sampled_from([" ", "", "\n", "1", "-", "a", " '", ".", "«"]), min_size=len(words), max_size=len(words)))
    return "".join(s + w for s, w in zip(seps, words))


@SETTINGS
@given(text=multi_byte_words())
def test_multi_byte_letter_words_match_tiktoken(pairs, text):
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name


@st.composite
def repetitive_text(draw):
    """Texts of 4 KB and more made of a small random vocabulary of pieces, so the
    per-text cache hits often, misses, and (with many distinct pieces) fills up."""
    words = draw(st.lists(st.one_of(piece, st.text(alphabet="abcdefghij", min_size=1, max_size=20)), min_size=1, max_size=300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    out, size = [], 0
    while size < 5000:
        w = rng.choice(words) + rng.choice(["", " ", "\n", ". "])
        out.append(w)
        size += len(w.encode())
    return "".join(out)


@SETTINGS
@given(text=repetitive_text())
def test_piece_cache_texts_match_tiktoken(pairs, text):
    for p in pairs.values():
        assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name


def test_full_piece_cache_matches_tiktoken(pair):
    # Far more distinct merged pieces than the cache has slots, each seen twice.
    rng = random.Random(7)
    letters = "qwzxjkvbpgfmdl"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 12))) for _ in range(40_000)]
    text = " ".join(words + words[::-1])
    assert pair.core.encode_ordinary(text) == pair.ref.encode_ordinary(text)


def test_cache_across_special_token_segments(pair):
    special = sorted(pair.special_tokens)[0]
    block = "the quick brown foxes jumped; " * 200
    text = block + special + block + special + block[:1000]
    assert pair.core.encode(text, allowed_special="all") == pair.ref.encode(text, allowed_special="all")


@pytest.mark.parametrize("corpus", ["tinyshakespeare.txt", "multilingual.txt"])
def test_lists_share_int_objects_but_not_lists(pair, corpora, corpus):
    text = corpora[corpus][:50_000]
    first = pair.core.encode_ordinary(text)
    second = pair.core.encode_ordinary(text)
    assert first == second == pair.ref.encode_ordinary(text)
    assert first is not second
    big = [i for i in first if i > 1000]
    assert big and all(a is b for a, b in zip(big, [i for i in second if i > 1000]))
    first.append(-1)
    first[0] = -5
    assert second == pair.ref.encode_ordinary(text)
    batch = pair.core.encode_ordinary_batch([text[:300], text[:300]])
    assert batch[0] == batch[1] and batch[0] is not batch[1]


def test_id_lists_are_filled_through_their_item_array_with_counted_references(pair, corpora):
    """On CPython the ids are written into a new list's item array (the stable ABI's
    PyList_SetItem costs a call per token); each list holds one counted reference per item."""
    import platform

    from fastllm._core import testing

    assert testing.lists_filled_directly() == (platform.python_implementation() == "CPython")
    text = corpora["tinyshakespeare.txt"][:20_000]
    ids = pair.core.encode_ordinary(text)
    assert ids == pair.ref.encode_ordinary(text) and len(ids) == len(list(iter(ids)))
    big = next(i for i in ids if i > 1000)  # a shared int, not one of CPython's small ints
    held = ids.count(big)
    before = sys.getrefcount(big)
    more = [pair.core.encode_ordinary(text) for _ in range(3)]
    assert sys.getrefcount(big) == before + 3 * held
    del more
    assert sys.getrefcount(big) == before


def test_long_id_lists_are_ordinary_lists(pair, corpora):
    """A list of 1024 ids or more gets an item array that fastllm makes (not zeroed first):
    on either side of that length, the list grows, shrinks, sorts, copies and is measured
    as a list Python made with the same items."""
    text = corpora["tinyshakespeare.txt"][:40_000]
    ref = pair.ref.encode_ordinary(text)
    assert len(ref) > 4000, "the text gives lists past the length where the array changes hands"
    tried = []
    for n in (1000, 1023, 1024, 1025, 3000):
        # Re-encoded, the text of the first n ids mostly gives n ids again.
        prefix = pair.ref.decode(ref[:n])
        ids = pair.core.encode_ordinary(prefix)
        want = pair.ref.encode_ordinary(prefix)
        if len(want) != n:
            continue
        tried.append(n)
        # (tiktoken's list is made by PyList_New, with room for exactly its items.)
        assert ids == want and sys.getsizeof(ids) == sys.getsizeof(want)
        ids.extend(range(5_000))  # grows its array (realloc of the one fastllm made)
        del ids[10:2_000]
        ids.sort()
        copy = ids[:]
        want = want + list(range(5_000))
        del want[10:2_000]
        assert copy == sorted(want)
        ids.clear()
        assert ids == [] and copy
    assert len(tried) >= 3, f"only {tried} prefixes ended on a piece boundary"
    assert min(tried) < 1024 <= max(tried), f"lengths {tried}: not both sides of 1024"


def test_id_lists_are_left_out_of_the_cycle_collector(pair, corpora):
    """Lists of ints join no cycles: the collector is spared walking them (the batch's outer
    list, which holds lists, stays tracked), and they are still ordinary, freed lists."""
    import gc
    import weakref

    text = corpora["tinyshakespeare.txt"][:5_000]
    ids = pair.core.encode_ordinary(text)
    batch = pair.core.encode_ordinary_batch([text[:300], text[300:900]])
    assert not gc.is_tracked(ids) and not any(gc.is_tracked(item) for item in batch)
    assert gc.is_tracked(batch)
    assert gc.is_tracked([1, 2]), "a list made in Python is tracked: the check can fail"
    gc.collect()
    assert ids == pair.ref.encode_ordinary(text) and batch[1] == pair.ref.encode_ordinary(text[300:900])
    ids.append(-1)
    assert ids[-1] == -1 and ids[:-1] == pair.ref.encode_ordinary(text)
    # Freed when the last reference goes (lists cannot be weakly referenced; a subclass can,
    # so watch an object the list holds).
    class Marker:
        pass

    marker = Marker()
    gone = weakref.ref(marker)
    ids.append(marker)
    del marker, ids
    assert gone() is None


def test_lists_hold_one_reference_per_id(pair, corpora):
    """The shared ints' reference counts are kept by hand (not through Py_IncRef): a list
    holds exactly one per item, and gives them all back when it goes."""
    text = corpora["tinyshakespeare.txt"][:20_000]
    keep = pair.core.encode_ordinary(text)
    # Objects as the lists share them (the first occurrence of a few ids).
    for obj in {i: i for i in keep if i > 1000}.values():
        occurrences = keep.count(obj)
        base = sys.getrefcount(obj)
        lists = [pair.core.encode_ordinary(text) for _ in range(3)]
        assert sys.getrefcount(obj) == base + 3 * occurrences, obj
        del lists
        assert sys.getrefcount(obj) == base, obj


@SETTINGS
@given(text=tricky_text)
def test_numpy_output_equals_list(pairs, text):
    np = pytest.importorskip("numpy")
    for p in pairs.values():
        ids = np.frombuffer(p.core.encode_to_u32_bytes(text, disallowed_special=()), dtype="<u4")
        assert ids.tolist() == p.ref.encode(text, disallowed_special=()), p.name


def test_thread_caches_follow_the_tokenizer(pairs, corpora):
    # One thread's piece cache serves one tokenizer at a time: switching back
    # and forth, and calling again (cache warm), gives the same ids.
    text = corpora["multilingual.txt"][:20_000]
    for _ in range(2):
        for p in pairs.values():
            assert p.core.encode_ordinary(text) == p.ref.encode_ordinary(text), p.name
            lines = text.splitlines(keepends=True)
            assert p.core.encode_ordinary_batch(lines, num_threads=2) == p.ref.encode_ordinary_batch(lines), p.name


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_batches_work_in_a_forked_child(pair, corpora):
    lines = corpora["tinyshakespeare.txt"][:20_000].splitlines(keepends=True)
    expected = pair.ref.encode_ordinary_batch(lines)
    assert pair.core.encode_ordinary_batch(lines, num_threads=2) == expected  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: its pool must be its own, or the batch would wait forever
        ok = pair.core.encode_ordinary_batch(lines, num_threads=2) == expected
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the batch hung in the forked child")
