"""Vocabularies whose ids are not their ranks: special tokens first (HF's trainer, GPT-NeoX,
Pythia, StarCoder: ``<|endoftext|>`` = 0) and ranks with gaps (tiktoken allows them).

The core merges by rank over ids ``0..n``; such vocabularies run on internal ids that
``rust/src/id_map.rs`` maps at every boundary. The references are ``tokenizers`` reading a
GPT-NeoX-shaped ``tokenizer.json`` (GPT-2's ranks two ids up, two specials below them,
added tokens above) and tiktoken with the same ``{bytes: rank}`` dict. Every way ids come
out (lists, numpy, batches, completions) and go in (decode in each form) is checked, and
every file format and pickle keeps the ids.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm import Tokenizer
from fastllm.tokenizer.formats.gpt2_vocab import bytes_to_text
from fastllm.tokenizer.vocab import derive_merges

from tests.support.text_strategies import FRAGMENTS, text_strategy

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, decoders, models, processors  # noqa: E402
from tokenizers import pre_tokenizers as pt  # noqa: E402

SPECIALS_FIRST = ["<|endoftext|>", "<|padding|>"]
#: GPT-NeoX's tokenizer.json also has runs of spaces as (non-special) added tokens after the vocabulary.
ADDED = [AddedToken("    ", special=False, normalized=True), AddedToken("\t\t", special=False, normalized=True)]
LATE_SPECIAL = "<|im_end|>"
PIECES = SPECIALS_FIRST + [LATE_SPECIAL, "    ", "\t\t", "\t\t\t", "     x"]
texts = st.one_of(text_strategy, st.lists(st.sampled_from(PIECES + FRAGMENTS[:80]), max_size=20).map("".join))


@pytest.fixture(scope="module")
def gpt2_tokens(shared_data):
    return Tokenizer.from_tiktoken(shared_data / "gpt2.tiktoken", pattern="gpt2").mergeable_tokens()


@pytest.fixture(scope="module")
def neox(tmp_path_factory, gpt2_tokens):
    """(path, tokenizers, fastllm) for a GPT-NeoX-shaped tokenizer.json over GPT-2's ranks."""
    vocab = {text: i for i, text in enumerate(SPECIALS_FIRST)}
    vocab.update({bytes_to_text(token): rank + len(SPECIALS_FIRST) for rank, token in enumerate(gpt2_tokens)})
    merges = [(bytes_to_text(a), bytes_to_text(b)) for a, b in derive_merges(gpt2_tokens)]
    hf = tokenizers.Tokenizer(models.BPE(vocab, merges, ignore_merges=True))
    hf.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS_FIRST])
    hf.add_tokens(ADDED)
    hf.add_special_tokens([AddedToken(LATE_SPECIAL, special=True, normalized=False)])
    path = tmp_path_factory.mktemp("neox") / "tokenizer.json"
    hf.save(str(path))
    return path, tokenizers.Tokenizer.from_file(str(path)), Tokenizer.from_hf_json(path)


def hf_ids(hf, text: str, specials: bool = True) -> list[int]:
    hf.encode_special_tokens = not specials
    try:
        return hf.encode(text, add_special_tokens=False).ids
    finally:
        hf.encode_special_tokens = False


def test_the_file_is_read_with_its_ids(neox, gpt2_tokens):
    _, hf, ours = neox
    n = len(gpt2_tokens)
    assert ours.special_tokens == {"<|endoftext|>": 0, "<|padding|>": 1, LATE_SPECIAL: n + 4}
    assert ours.mergeable_ids() == list(range(2, n + 2)) and ours.mergeable_tokens() == gpt2_tokens
    assert ours._mergeable_ranks[b"!"] == 2 == hf.token_to_id("!")
    assert ours.n_vocab == hf.get_vocab_size() == n + 5
    assert (ours.eot_token, ours.max_token_value) == (0, n + 4)
    assert ours.is_special_token(0) and ours.is_special_token(n + 4) and not ours.is_special_token(2)


@given(text=texts)
@settings(max_examples=120, deadline=None)
def test_specials_first_encode_like_tokenizers(text, neox):
    _, hf, ours = neox
    ids = ours.encode(text, allowed_special="all")
    assert ids == hf_ids(hf, text)
    assert ours.encode_ordinary(text) == hf_ids(hf, text, specials=False)  # tokenizers' encode_special_tokens
    assert ours.decode(ids) == text
    assert ours.encode_to_numpy(text, allowed_special="all").tolist() == ids


def test_every_way_out_gives_the_files_ids(neox, corpora):
    _, hf, ours = neox
    # Long texts are cut into runs on the pool's threads; short ones batched together.
    batch = [corpora["tinyshakespeare.txt"][:60_000], "<|endoftext|>    hi", "", "x<|im_end|>"] + ["a b\t\tc"] * 40
    expected = [hf_ids(hf, t) for t in batch]
    assert ours.encode_batch(batch, allowed_special="all", num_threads=2) == expected
    assert ours.encode_ordinary_batch(batch[:2], num_threads=2) == [hf_ids(hf, t, specials=False) for t in batch[:2]]
    assert ours.encode_to_numpy(batch[0]).tolist() == expected[0]
    assert ours.encode_ordinary_to_numpy(batch[1]).tolist() == hf_ids(hf, batch[1], specials=False)
    assert ours.encode_single_token(b"!") == 2 and ours.encode_single_token("<|padding|>") == 1


def test_every_way_in_takes_the_files_ids(neox):
    _, hf, ours = neox
    text = "<|endoftext|>Hello    world\t\t<|im_end|> caf\u00e9"
    ids = ours.encode(text, allowed_special="all")
    assert ids[0] == 0 and ids == hf_ids(hf, text)
    assert ours.decode(ids) == ours.decode(np.array(ids, dtype=np.uint32)) == text
    assert ours.decode_bytes(ids) == text.encode()
    assert b"".join(ours.decode_tokens_bytes(ids)) == text.encode()
    assert ours.decode_single_token_bytes(0) == b"<|endoftext|>" and ours.decode_single_token_bytes(2) == b"!"
    assert ours.decode_with_offsets(ids)[0] == text
    decoder = ours.incremental_decoder()
    assert decoder.add(ids[0]) + decoder.add_many(ids[1:]) + decoder.flush() == text
    assert ours.decode_batch([ids, ids[:1]]) == [text, "<|endoftext|>"]


@pytest.mark.parametrize("call", ["decode", "decode_bytes", "decode_tokens_bytes", "numpy", "incremental"])
def test_an_id_no_token_has_is_refused_by_its_number(call, neox):
    _, _, ours = neox
    bad = ours.n_vocab
    ids = [0, 2, bad]
    run = {
        "decode": lambda: ours.decode(ids),
        "decode_bytes": lambda: ours.decode_bytes(ids),
        "decode_tokens_bytes": lambda: ours.decode_tokens_bytes(ids),
        "numpy": lambda: ours.decode(np.array(ids, dtype=np.uint32)),
        "incremental": lambda: ours.incremental_decoder().add_many(ids),
    }[call]
    with pytest.raises(ValueError, match=f"unknown token id {bad} at position 2"):
        run()
    with pytest.raises(ValueError, match=f"unknown token id {bad}"):
        ours.decode_single_token_bytes(bad)


def test_every_file_format_and_pickle_keep_the_ids(neox, tmp_path):
    path, hf, ours = neox
    text = "<|endoftext|>The    quick\t\tbrown<|im_end|>"
    expected = hf_ids(hf, text)

    ours.save(tmp_path / "t.fastllm.json")
    assert json.loads((tmp_path / "t.fastllm.json").read_text())["version"] == 3
    ours.to_hf_json(tmp_path / "written.json")
    written = tokenizers.Tokenizer.from_file(str(tmp_path / "written.json"))
    assert hf_ids(written, text) == expected  # tokenizers reads the ids fastllm wrote
    ours.save_tiktoken(tmp_path / "t.tiktoken")
    copies = {
        "load": Tokenizer.load(tmp_path / "t.fastllm.json"),
        "hf_json": Tokenizer.from_hf_json(tmp_path / "written.json"),
        "pickle": pickle.loads(pickle.dumps(ours)),
        "with_special_tokens": ours.with_special_tokens(["<|new|>"]),
    }
    for name, copy in copies.items():
        assert copy.encode(text, allowed_special=set(SPECIALS_FIRST + [LATE_SPECIAL])) == expected, name
        assert copy.mergeable_ids() == ours.mergeable_ids() and copy.decode(expected) == text, name
    assert copies["with_special_tokens"].special_tokens["<|new|>"] == ours.n_vocab
    # A .tiktoken file holds ranks only (no added tokens): text without them.
    from_tiktoken = Tokenizer.from_tiktoken(tmp_path / "t.tiktoken", "gpt2", ours.special_tokens)
    plain = "<|endoftext|>The quick brown<|im_end|>"
    assert from_tiktoken.encode(plain, allowed_special="all") == hf_ids(hf, plain)
    assert from_tiktoken.mergeable_ids() == ours.mergeable_ids()


def test_pretrained_gpt2_files_with_the_special_first(neox, tmp_path, gpt2_tokens):
    _, hf, _ = neox
    vocab = {"<|endoftext|>": 0, **{bytes_to_text(t): rank + 1 for rank, t in enumerate(gpt2_tokens)}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merges = [f"{bytes_to_text(a)} {bytes_to_text(b)}" for a, b in derive_merges(gpt2_tokens)]
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    ours = Tokenizer.from_pretrained(tmp_path)
    text = "<|endoftext|>Hello world!"
    assert ours.encode(text, allowed_special="all") == [0] + [i - 1 for i in hf_ids(hf, "Hello world!")]


def test_trained_with_special_tokens_first(tmp_path, corpora):
    # tokenizers' trainer numbers the special tokens first, as DeepSeek V3's <｜begin▁of▁sentence｜> = 0.
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<｜begin▁of▁sentence｜>", "<pad>"],
        initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False,
    )
    hf.train_from_iterator([corpora["tinyshakespeare.txt"][:50_000]], trainer)
    hf.save(str(tmp_path / "trained.json"))
    assert json.loads((tmp_path / "trained.json").read_text())["model"]["ignore_merges"] is False
    ours = Tokenizer.from_hf_json(tmp_path / "trained.json")
    assert ours.special_tokens == {"<｜begin▁of▁sentence｜>": 0, "<pad>": 1}
    for text in (corpora["tinyshakespeare.txt"][50_000:80_000], corpora["multilingual.txt"][:20_000], "<pad>x<｜begin▁of▁sentence｜>"):
        assert ours.encode(text, allowed_special="all") == hf.encode(text).ids


# ----- ranks with gaps, against tiktoken ---------------------------------------------------


@pytest.fixture(scope="module")
def holed(gpt2_tokens):
    """(tiktoken, fastllm) for GPT-2's ranks with two holes, a special token in each."""
    ranks = {token: rank + (rank >= 300) + 5 * (rank >= 40_000) for rank, token in enumerate(gpt2_tokens)}
    specials = {"<|endoftext|>": 300, "<|fim|>": 40_003, "<|end|>": 60_000}
    ours = Tokenizer(ranks, specials, "gpt2")
    ref = tiktoken.Encoding("holed", pat_str=ours.pattern_regex, mergeable_ranks=ranks, special_tokens=specials)
    return ref, ours


@given(text=st.one_of(text_strategy, st.lists(st.sampled_from(["<|endoftext|>", "<|fim|>", "<|end|>"] + FRAGMENTS[:80]), max_size=20).map("".join)))
@settings(max_examples=120, deadline=None)
def test_ranks_with_gaps_encode_like_tiktoken(text, holed):
    ref, ours = holed
    ids = ours.encode(text, allowed_special="all")
    assert ids == ref.encode(text, allowed_special="all")
    assert ours.decode_bytes(ids) == ref.decode_bytes(ids)
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)


def test_ranks_with_gaps_elsewhere_like_tiktoken(holed):
    ref, ours = holed
    text = "Hello wor"
    (stable, completions), (ref_stable, ref_completions) = ours.encode_with_unstable(text), ref.encode_with_unstable(text)
    assert stable == ref_stable and len(completions) > 10
    assert {tuple(c) for c in completions} == {tuple(c) for c in ref_completions}
    assert ours.n_vocab == ref.n_vocab and ours.token_byte_values() == ref.token_byte_values()
    for gap in (40_001, 40_005):  # no token has these ids (300 and 40_003 are specials)
        with pytest.raises(ValueError, match=f"unknown token id {gap} at position 1"):
            ours.decode([5, gap])
        with pytest.raises(ValueError, match=f"unknown token id {gap}"):
            ours.decode_single_token_bytes(gap)


def test_ids_numbered_past_2_to_the_24_encode_like_tiktoken(gpt2_tokens):
    """A vocabulary numbered far past its size (ids of 2**24 and more, through the id map):
    the lists equal tiktoken's, and each id's int is made once and shared by later lists."""
    far = 1 << 24
    ranks = {token: rank + far * (rank >= 300) for rank, token in enumerate(gpt2_tokens)}
    ours = Tokenizer(ranks, {}, "gpt2")
    ref = tiktoken.Encoding("far", pat_str=ours.pattern_regex, mergeable_ranks=ranks, special_tokens={})
    text = "Hello world, the quick brown fox jumps over the lazy dog. " * 20
    ids = ours.encode_ordinary(text)
    assert ids == ref.encode_ordinary(text) and max(ids) >= far and min(ids) < 300
    again = ours.encode_ordinary(text)
    assert all(a is b for a, b in zip(ids, again)), "made once per tokenizer"
    assert ours.encode_ordinary_batch([text, text[:50]]) == [ids, ref.encode_ordinary(text[:50])]


def test_a_special_token_on_a_mergeable_id_is_refused(gpt2_tokens):
    ranks = {token: rank + 1 for rank, token in enumerate(gpt2_tokens)}
    with pytest.raises(ValueError, match='special token "<s>" has id 7, the id of a mergeable token'):
        Tokenizer(ranks, {"<s>": 7}, "gpt2")
    assert Tokenizer(ranks, {"<s>": 0}, "gpt2").encode("<s>a", allowed_special="all")[0] == 0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(ids=d["ids"][:-1]), '"ids" has 257 ids for 258 ranks'),
        (lambda d: d.update(ids=["x"] * 258), '"ids" must be a list of integer ids'),
        (lambda d: d.pop("ids"), '"ids" must be a list of integer ids'),
        (lambda d: d["ids"].__setitem__(1, d["ids"][0]), "mergeable tokens of ranks 0 and 1 both have id 1"),
    ],
)
def test_a_bad_ids_field_is_refused_naming_the_file(change, message, tmp_path):
    tokens = [bytes([b]) for b in range(256)] + [b"ab", b"abc"]
    Tokenizer(tokens, {"<s>": 0}, "gpt2", ids=range(1, 259)).save(tmp_path / "t.json")
    document = json.loads((tmp_path / "t.json").read_text())
    change(document)
    (tmp_path / "t.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message) as info:
        Tokenizer.load(tmp_path / "t.json")
    assert str(tmp_path / "t.json") in str(info.value)



# ----- ids in another order than the merges: RoBERTa ---------------------------------------


@pytest.fixture(scope="module")
def roberta(tmp_path_factory, gpt2_tokens):
    """(path, tokenizers, fastllm) for a RoBERTa-shaped tokenizer.json: four specials first,
    GPT-2's tokens numbered in another order than their merges (fairseq numbers them by
    frequency; here a fixed shuffle), <mask> last, RoBERTa's post-processor."""
    import random

    order = list(range(len(gpt2_tokens)))
    random.Random(7).shuffle(order)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {text: i for i, text in enumerate(specials)}
    vocab.update({bytes_to_text(gpt2_tokens[rank]): len(specials) + k for k, rank in enumerate(order)})
    vocab["<mask>"] = len(vocab)
    merges = [(bytes_to_text(a), bytes_to_text(b)) for a, b in derive_merges(gpt2_tokens)]
    hf = tokenizers.Tokenizer(models.BPE(vocab, merges))
    hf.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    hf.add_special_tokens([AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    hf.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    path = tmp_path_factory.mktemp("roberta") / "tokenizer.json"
    hf.save(str(path))
    return path, tokenizers.Tokenizer.from_file(str(path)), Tokenizer.from_hf_json(path)


@given(text=st.one_of(texts, st.lists(st.sampled_from(["<s>", "</s>", " <mask>", "<mask>"] + FRAGMENTS[:80]), max_size=20).map("".join)))
@settings(max_examples=120, deadline=None)
def test_ids_out_of_merge_order_encode_like_tokenizers(text, roberta):
    _, hf, ours = roberta
    ids = ours.encode(text, allowed_special="all")
    assert ids == hf_ids(hf, text)
    assert ours.encode(text, allowed_special="all", add_special_tokens=True) == hf.encode(text).ids
    assert ours.encode_ordinary(text) == hf_ids(hf, text, specials=False)
    assert ours.encode_to_numpy(text, allowed_special="all").tolist() == ids
    assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)


def test_ids_out_of_merge_order_on_the_corpora_and_back(roberta, corpora, tmp_path):
    path, hf, ours = roberta
    assert ours.mergeable_ids() != sorted(ours.mergeable_ids())
    texts = [corpora["tinyshakespeare.txt"][:40_000], corpora["multilingual.txt"][:20_000]]
    expected = [hf_ids(hf, t) for t in texts]
    assert ours.encode_batch(texts, num_threads=2) == expected
    assert [ours.decode(ids) for ids in expected] == texts
    ours.save(tmp_path / "t.fastllm.json")
    ours.to_hf_json(tmp_path / "written.json")
    written = tokenizers.Tokenizer.from_file(str(tmp_path / "written.json"))
    for copy in (Tokenizer.load(tmp_path / "t.fastllm.json"), Tokenizer.from_hf_json(tmp_path / "written.json"),
                 pickle.loads(pickle.dumps(ours))):
        assert copy.encode(texts[1]) == expected[1] and copy.mergeable_ids() == ours.mergeable_ids()
    assert hf_ids(written, texts[1]) == expected[1]
    # tiktoken merges by its ranks, which are the ids: no .tiktoken form.
    with pytest.raises(ValueError, match="ids do not follow its merges"):
        ours.save_tiktoken(tmp_path / "t.tiktoken")
    assert not (tmp_path / "t.tiktoken").exists()


def test_gpt2_files_with_ids_out_of_merge_order(roberta, tmp_path):
    path, hf, ours = roberta
    document = json.loads(path.read_text(encoding="utf-8"))
    (tmp_path / "vocab.json").write_text(json.dumps(document["model"]["vocab"]), encoding="utf-8")
    merges = [" ".join(m) if isinstance(m, list) else m for m in document["model"]["merges"]]
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    from_files = Tokenizer.from_pretrained(tmp_path)
    text = "Hello world, and a naïve café 123"
    assert from_files.encode(text) == hf_ids(hf, text)
