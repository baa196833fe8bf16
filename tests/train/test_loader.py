from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.train.data import BatchLoader, TokenStream, read_meta
from fastllm.train.prepare import prepare_documents


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, tokenizer, documents):
    out = tmp_path_factory.mktemp("sharded")
    prepare_documents(documents, tokenizer, out, shard_tokens=997, chunk_bytes=1500, progress=False)
    return out


def full_stream(data_dir, split):
    meta = read_meta(data_dir)
    return np.concatenate([np.fromfile(data_dir / s["file"], dtype=meta["dtype"])
                           for s in meta["splits"][split]["shards"]]).astype(np.int64)


@settings(max_examples=50, deadline=None)
@given(start=st.integers(0, 20_000), length=st.integers(1, 3000))
def test_stream_reads_across_shard_boundaries(sharded, start, length):
    stream = TokenStream(sharded, "train")
    assert len(stream.shards) > 10
    start = min(start, stream.total - length)
    assert np.array_equal(stream.read(start, length), full_stream(sharded, "train")[start : start + length])


def test_batches_are_consecutive_windows_with_shifted_targets(sharded):
    loader = BatchLoader(sharded, "train", batch_size=3, seq_len=16)
    tokens = full_stream(sharded, "train")
    x, y = loader.next_batch()
    assert x.shape == y.shape == (3, 16) and x.dtype == torch.long
    assert np.array_equal(x.numpy().ravel(), tokens[:48])
    assert np.array_equal(y.numpy().ravel(), tokens[1:49])
    x2, _ = loader.next_batch()
    assert np.array_equal(x2.numpy().ravel(), tokens[48:96])


@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_split_the_single_process_batch(sharded, shuffle):
    single = BatchLoader(sharded, "train", batch_size=4, seq_len=8, shuffle=shuffle, seed=3)
    ranks = [BatchLoader(sharded, "train", batch_size=2, seq_len=8, rank=r, world_size=2, shuffle=shuffle, seed=3)
             for r in range(2)]
    for _ in range(3000 if shuffle is False else 1500):  # past the end of the stream too (wrap-around)
        x, y = single.next_batch()
        parts = [loader.next_batch() for loader in ranks]
        assert torch.equal(x, torch.cat([p[0] for p in parts]))
        assert torch.equal(y, torch.cat([p[1] for p in parts]))


def test_shuffled_epochs_visit_every_window_once(sharded):
    loader = BatchLoader(sharded, "val", batch_size=4, seq_len=16, shuffle=True, seed=1)
    tokens = full_stream(sharded, "val")
    windows = Counter(tuple(tokens[i * 16 : i * 16 + 16]) for i in range(loader.windows))
    per_epoch = loader.windows // 4
    first = loader.next_batch()[0].numpy()
    assert not np.array_equal(first.ravel(), tokens[: 4 * 16])  # not the stream order
    loader.reset()
    epochs = []
    for _ in range(2):
        seen = Counter(tuple(row) for _ in range(per_epoch) for row in loader.next_batch()[0].numpy())
        epochs.append(seen)
        assert not seen - windows  # no window more often than it occurs
        assert sum(windows.values()) - sum(seen.values()) < 4  # only the remainder of the last batch is skipped
    assert loader.epoch == 1


@pytest.mark.parametrize("shuffle", [False, True])
def test_wraps_around_and_resumes_from_its_state(sharded, shuffle):
    loader = BatchLoader(sharded, "val", batch_size=4, seq_len=32, shuffle=shuffle)
    per_epoch = loader.windows // 4
    for _ in range(per_epoch + 2):
        loader.next_batch()
    assert loader.epoch == 1
    state = loader.state_dict()
    expected = [loader.next_batch() for _ in range(3)]
    fresh = BatchLoader(sharded, "val", batch_size=4, seq_len=32, shuffle=shuffle)
    fresh.load_state_dict(state)
    for (x, y), (ex, ey) in zip([fresh.next_batch() for _ in range(3)], expected):
        assert torch.equal(x, ex) and torch.equal(y, ey)
    other = BatchLoader(sharded, "val", batch_size=2, seq_len=32)
    with pytest.raises(ValueError, match="same batch size"):
        other.load_state_dict(state)


def test_loader_errors(sharded, tmp_path):
    with pytest.raises(ValueError, match="not a prepared data directory"):
        BatchLoader(tmp_path, "train", 2, 8)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        BatchLoader(sharded, "val", 1000, 1000)
    with pytest.raises(ValueError, match="split must be"):
        BatchLoader(sharded, "test", 2, 8)
    with pytest.raises(ValueError, match="rank"):
        BatchLoader(sharded, "train", 2, 8, rank=2, world_size=2)
    with pytest.raises(ValueError, match="positive"):
        BatchLoader(sharded, "train", 0, 8)
