"""A str reaches the encoder as UTF-8 by one of two roads (rust/src/bindings/text_args.rs):
read where CPython keeps its characters (str_storage.rs: ASCII lent as it is, any other kind
transcoded by simdutf), or, where that layout is not known, through the stable ABI's calls (a
long non-ASCII str widened by ``PyUnicode_AsUCS4`` and transcoded here, the rest lent by
CPython). Every test runs both roads: the bytes must be exactly ``str.encode("utf-8")`` for
every kind of str CPython stores (1, 2 and 4 bytes a character), a surrogate must still be
refused as CPython refuses it, and a batch's texts must arrive whole from any iterable."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastllm import _core

utf8_of = _core.testing.utf8_of
read_in_place = _core.testing.strs_read_in_place

#: The shortest text the calls' road transcodes (TRANSCODE_FROM_CHARS in text_args.rs).
THRESHOLD = 1024

# One string per storage kind CPython picks from the widest character, each with
# the 1-, 2-, 3- and 4-byte UTF-8 characters the kind can hold.
KINDS = {
    "latin-1": "naïve café, Straße ÷ ×",
    "ucs-2": "привет мир, 日本語の文章, ĳ ǅ ∑ — «»",
    "ucs-4": "emoji 👋🏽 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, 中文 𠀀 ok",
}

#: A core whose ids are the text's bytes, so that a batch's output shows exactly what it was given.
BYTES = _core.CoreBPE([bytes([b]) for b in range(256)], {}, "o200k")

#: Whether this interpreter is one whose str layout str_storage.rs knows.
KNOWN_LAYOUT = (
    sys.implementation.name == "cpython" and (3, 9) <= sys.version_info[:2] <= (3, 14) and sys.maxsize > 2**32
)


@pytest.fixture(autouse=True, params=["in place", "calls"])
def road(request):
    """Each test once per road; the in-place road only where this interpreter allows it."""
    if request.param == "in place" and not KNOWN_LAYOUT:
        pytest.skip(f"strs are not read in place on {sys.implementation.name} {sys.version_info[:2]}")
    read_in_place(request.param == "in place")
    yield request.param
    read_in_place(True)


def _of_length(sample: str, n: int) -> str:
    return (sample * (n // len(sample) + 1))[:n]


def test_strs_are_read_in_place_where_the_layout_is_known(road):
    # Guards against the fast road silently switching itself off (a failed check at import).
    assert read_in_place() == (road == "in place")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [1, 7, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 70_001])
def test_each_kind_either_side_of_the_threshold(kind, n, road):
    text = _of_length(KINDS[kind], n)
    data, transcoded = utf8_of(text)
    assert data == text.encode("utf-8")
    if road == "calls":
        assert transcoded == (n >= THRESHOLD), "the threshold moved: update THRESHOLD here"
    else:
        assert transcoded == (not text.isascii())


@pytest.mark.parametrize("text", ["", "a", "plain ASCII text. " * 200])
def test_ascii_is_lent_not_transcoded(text):
    assert utf8_of(text) == (text.encode(), False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", [0, 1, THRESHOLD // 2, -1])
@pytest.mark.parametrize("n", [5, 2 * THRESHOLD])
def test_a_lone_surrogate_is_refused_as_cpython_refuses_it(kind, where, n):
    chars = list(_of_length(KINDS[kind], n))
    chars[where % n] = "\udc80"
    with pytest.raises(UnicodeEncodeError, match="surrogate"):
        utf8_of("".join(chars))


@pytest.mark.parametrize("n", [2, 40, 2 * THRESHOLD])
@pytest.mark.parametrize("where", [0, 33, -2])
def test_a_surrogate_pair_stored_as_two_characters_is_refused_not_joined(n, where):
    # A 2-byte str holding a high and a low surrogate reads as valid UTF-16 (one emoji);
    # CPython refuses it, and so must fastllm, in a single text and in a batch.
    chars = list(_of_length(KINDS["ucs-2"], n))
    chars[where : where + 2 if where != -2 else None] = ["\ud83d", "\udc4b"]
    text = "".join(chars)
    with pytest.raises(UnicodeEncodeError, match="surrogate"):
        text.encode("utf-8")
    with pytest.raises(UnicodeEncodeError, match="surrogate"):
        utf8_of(text)
    with pytest.raises(UnicodeEncodeError, match="surrogate"):
        BYTES.encode_ordinary_batch(["ok", text], 1)


def test_a_buffer_reused_from_a_longer_text_holds_only_the_new_one():
    long, short = _of_length(KINDS["ucs-2"], 50_000), _of_length(KINDS["latin-1"], 2_000)
    for text in (long, short, long, short):
        assert utf8_of(text)[0] == text.encode()


def test_texts_of_a_batch_keep_their_own_bytes():
    # Several transcoded texts alive at once (a batch) must not share a buffer.
    texts = [_of_length(KINDS[k], THRESHOLD + 7 * i) for i, k in enumerate(list(KINDS) * 3)]
    ids = BYTES.encode_ordinary_batch(texts, 2)
    assert [bytes(i) for i in ids] == [t.encode() for t in texts]


@given(text=st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=THRESHOLD, max_size=3 * THRESHOLD))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_unicode_transcodes_exactly(text):
    data, transcoded = utf8_of(text)
    assert data == text.encode("utf-8")
    assert transcoded == (not text.isascii())


@given(texts=st.lists(st.text(max_size=40), max_size=30))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_short_texts_and_surrogates_in_a_batch(texts):
    # Any text, surrogates included: the batch equals str.encode's bytes, or raises as it does.
    try:
        expected = [t.encode("utf-8") for t in texts]
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError, match="surrogate"):
            BYTES.encode_ordinary_batch(texts, 1)
        return
    assert [bytes(i) for i in BYTES.encode_ordinary_batch(texts, 1)] == expected


def test_a_str_subclass_is_left_to_cpython():
    class Lying(str):
        def isascii(self):  # would send non-ASCII text down the ASCII path if asked
            return True

    for n in (5, 2 * THRESHOLD):
        text = Lying(_of_length(KINDS["ucs-2"], n))
        assert utf8_of(text) == (text.encode(), False)


# A batch's texts are taken into a list of the core's own, then each short one's UTF-8 is
# lent by its str (TextBatch in text_args.rs): every kind of text and iterable must arrive
# whole, and a str must stay alive while the batch is encoded, whatever the caller's list does.


class Sub(str):
    pass


def _mixed_texts() -> list[str]:
    texts = ["", "a", "plain ASCII", KINDS["latin-1"], KINDS["ucs-2"], KINDS["ucs-4"], Sub("sub ✓")]
    texts += [_of_length(KINDS[k], THRESHOLD + 3) for k in KINDS] + [Sub(_of_length(KINDS["ucs-2"], THRESHOLD))]
    return texts


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("container", [list, tuple, iter])
def test_a_batch_of_every_kind_of_text_arrives_whole(container, threads):
    texts = _mixed_texts()
    ids = BYTES.encode_ordinary_batch(container(texts), threads)
    assert [bytes(i) for i in ids] == [t.encode() for t in texts]


@pytest.mark.parametrize("bad", [3, None, b"bytes"])
def test_an_item_that_is_not_a_str_is_named_by_its_index(bad):
    texts = _mixed_texts()
    texts.insert(5, bad)
    with pytest.raises(TypeError, match=rf"texts\[5\] must be str, not {type(bad).__name__}"):
        BYTES.encode_ordinary_batch(texts, 2)


@pytest.mark.parametrize("text", ["a\udc80b", _of_length(KINDS["ucs-2"], 2 * THRESHOLD) + "\udc80"])
def test_a_lone_surrogate_in_a_batch_is_refused(text):
    with pytest.raises(UnicodeEncodeError, match="surrogate"):
        BYTES.encode_ordinary_batch(["fine", text], 2)


def test_texts_dropped_by_the_caller_during_the_batch_stay_alive():
    import threading

    for attempt in range(20):
        # Strs that only the list holds, freed by clear() unless the batch keeps them.
        texts = [f"text {i} of attempt {attempt}, " * 8 for i in range(30_000)]
        expected = [t.encode() for t in texts]
        result = []
        worker = threading.Thread(target=lambda: result.append(BYTES.encode_ordinary_batch(texts, 2)))
        worker.start()
        texts.clear()
        # New strs of the same size, to take the memory of any that were freed.
        junk = [f"junk {i} of attempt {attempt}, " * 8 for i in range(30_000)]
        worker.join()
        del junk
        if result[0]:  # the batch began after clear(): try again
            assert [bytes(i) for i in result[0]] == expected
            return
    pytest.skip("the batch never began before the caller cleared its list")


# Large batches: every entry point, one to three threads, several runs per thread (a run is at least
# 8 KB for the flat outputs, 32 KB for lists: see plan_tasks in rust/src/core_bpe/batch.rs).


def _many_texts(n: int) -> list[str]:
    """Texts of every kind and length up to 96 characters, a few long ones among them."""
    kinds = list(KINDS.values()) + ["ascii line of text\n"]
    texts = [_of_length(kinds[i % len(kinds)], i % 97) for i in range(n)]
    for i in range(n // 7, n, n // 5):
        texts[i] = _of_length(kinds[i % 3], THRESHOLD + i)
    return texts


def _flat(core, texts, threads, special: bool) -> list[bytes]:
    if special:
        ids, offsets = core.encode_batch_to_u32_bytes(texts, None, None, threads)
    else:
        ids, offsets = core.encode_ordinary_batch_to_u32_bytes(texts, threads)
    ids = [int.from_bytes(ids[k : k + 4], "little") for k in range(0, len(ids), 4)]
    ends = [int.from_bytes(offsets[k : k + 8], "little") for k in range(0, len(offsets), 8)]
    return [bytes(ids[a:b]) for a, b in zip(ends, ends[1:])]


ENTRIES = {
    "lists": lambda core, texts, threads: [bytes(i) for i in core.encode_ordinary_batch(texts, threads)],
    "lists, specials": lambda core, texts, threads: [bytes(i) for i in core.encode_batch(texts, None, None, threads)],
    "flat": lambda core, texts, threads: _flat(core, texts, threads, special=False),
    "flat, specials": lambda core, texts, threads: _flat(core, texts, threads, special=True),
}


class ListOfTexts(list):
    pass


# An exact list is read item by item, a stretch at a time (a reference to each text taken as it is
# read); a tuple holds its own; anything else is first made into a list of the batch's own.
CONTAINERS = {"list": list, "tuple": tuple, "iterator": iter, "list subclass": ListOfTexts}


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("container", CONTAINERS)
def test_a_batch_of_many_runs_arrives_whole_and_in_order(container, entry, threads):
    texts = _many_texts(5_137)
    assert sum(len(t.encode()) for t in texts) > 8 * 32_000
    assert ENTRIES[entry](BYTES, CONTAINERS[container](texts), threads) == [t.encode() for t in texts]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("bad", [3, "late \udc80 surrogate", _of_length(KINDS["ucs-4"], 2 * THRESHOLD) + "\udc80"])
@pytest.mark.parametrize("container", ["list", "tuple"])
def test_an_error_late_in_a_batch_stops_it_and_names_the_text(container, entry, threads, bad):
    texts = _many_texts(4_096)
    where = 3_077
    texts[where] = bad
    expected = (TypeError, rf"texts\[{where}\] must be str") if bad == 3 else (UnicodeEncodeError, "surrogate")
    with pytest.raises(expected[0], match=expected[1]):
        ENTRIES[entry](BYTES, CONTAINERS[container](texts), threads)
    # The pool and the core are left fit for the next batch.
    texts[where] = "fine"
    assert ENTRIES[entry](BYTES, texts, threads) == [t.encode() for t in texts]
