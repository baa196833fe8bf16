"""``fastllm viz dataset``: reading documents, embedding them, PCA, k-means and cluster names, each
against a slow reference; the page's data; the command line. (Browser tests: test_viz_pages.py.)"""

import json
import re
import sys
import time
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.cli.main import main
from fastllm.model.visualize import atlas
from fastllm.model.visualize.atlas import cluster_keywords, embed_token_lists, kmeans, pca_2d, write_atlas
from fastllm.train.prepare import file_documents
from tests.support.html_pages import page_data


@pytest.fixture(scope="module")
def plotly():
    return pytest.importorskip("plotly", reason="the HTML pages need plotly (pip install 'fastllm[viz]')")


@pytest.fixture()
def no_umap(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError, installed or not


# -- reading ---------------------------------------------------------------------------------------
def test_text_files_and_jsonl_text_or_messages(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("first doc\n\f\nsecond\ndoc\n\f\n", encoding="utf-8")
    lines = [{"text": "plain"}, {"messages": [{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": "hello"}]}]
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n", encoding="utf-8")
    assert list(file_documents(text)) == [(f"{text}#1", "first doc\n"), (f"{text}#2", "second\ndoc\n"),
                                          (f"{text}#3", "")]
    assert list(file_documents(jsonl)) == [(f"{jsonl}:1", "plain"), (f"{jsonl}:3", "user: hi\n\nassistant: hello")]
    assert list(file_documents(text, max_chars=4)) == [(f"{text}#1", "firs"), (f"{text}#2", "seco"), (f"{text}#3", "")]


def test_a_long_document_is_cut_while_read(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 200_000 + "\n\f\nnext", encoding="utf-8")
    assert [(w[-2:], t) for w, t in file_documents(path, max_chars=12)] == [("#1", "word word wo"), ("#2", "next")]


@pytest.mark.parametrize("line, message", [
    ('{"messages": [{"role": "robot", "content": "x"}]}', r"b\.jsonl:1: message 0 has role 'robot'"),
    ('{"texts": "x"}', r"b\.jsonl:1: expected an object with a string \"text\" or a chat \"messages\" list"),
    ('[1, 2]', r"b\.jsonl:1: expected an object"),
    ('{"text": ', r"b\.jsonl:1: malformed JSON"),
])
def test_bad_records_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "b.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        list(file_documents(path))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.txt does not exist"):
        list(file_documents(tmp_path / "nothing.txt"))


# -- embedding -------------------------------------------------------------------------------------
def test_batched_embeddings_equal_each_document_alone_in_transformers(model, hf_model, tokenizer):
    texts = ["a", "the cat sat on the mat", "hello there", "\u00e9t\u00e9 " * 20, "x" * 64, "of"]
    token_lists = [tokenizer.encode_ordinary(t)[:64] for t in texts]
    got = embed_token_lists(model, token_lists, batch_size=4)  # two batches, padded
    with torch.no_grad():
        for row, ids in zip(got, token_lists):
            hidden = hf_model.transformer(torch.tensor([ids])).last_hidden_state[0]
            np.testing.assert_allclose(row, hidden.mean(0).numpy(), atol=1e-5)


def test_embedding_arguments(model):
    with pytest.raises(ValueError, match="token list 1 is empty"):
        embed_token_lists(model, [[1], []])
    with pytest.raises(ValueError, match="longer than the context of 64"):
        embed_token_lists(model, [[1] * 65])
    with pytest.raises(ValueError, match="batch_size"):
        embed_token_lists(model, [[1]], batch_size=0)


# -- projection ------------------------------------------------------------------------------------
def reference_pca(x):
    """PCA from numpy's SVD of the centred rows, with the sign rule of pca_2d."""
    centred = x - x.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2].T
    axes = axes * np.sign(axes[np.abs(axes).argmax(0), [0, 1]])
    return centred @ axes, s[:2] ** 2 / (s**2).sum()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 40), d=st.integers(2, 12))
def test_pca_equals_the_svd(seed, n, d):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d) + rng.normal(size=d)
    coords, shares = pca_2d(x)
    want, want_shares = reference_pca(x)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    if len(s) > 2 and min(s[0] - s[1], s[1] - s[2]) < 1e-6 * s[0]:
        return  # axes of (nearly) equal variance are not unique
    np.testing.assert_allclose(coords, want, atol=1e-8 * max(1, np.abs(want).max()))
    np.testing.assert_allclose(shares, want_shares, atol=1e-10)


def test_pca_of_degenerate_inputs():
    coords, shares = pca_2d(np.ones((3, 4)))
    assert np.all(coords == 0) and shares == (0.0, 0.0)
    coords, shares = pca_2d(np.array([[1.0], [2.0], [4.0]]))
    assert coords[:, 1].tolist() == [0, 0, 0] and shares == (1.0, 0.0)


def test_projection_choice(monkeypatch, no_umap):
    x = np.random.default_rng(0).normal(size=(30, 5))
    assert atlas.project_2d(x, "auto")[1] == "PCA"
    with pytest.raises(ImportError, match="pip install umap-learn"):
        atlas.project_2d(x, "umap")
    calls = []

    class FakeUMAP:  # stands in for umap-learn, whose import takes long and which is optional
        def __init__(self, **kwargs):
            calls.append(kwargs)

        def fit_transform(self, data):
            return np.asarray(data)[:, :2] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    coords, method, shares = atlas.project_2d(x, "auto", seed=7)
    assert method == "UMAP" and shares is None and np.allclose(coords, x[:, :2] * 2)
    assert calls == [{"n_components": 2, "n_neighbors": 15, "random_state": 7}]
    assert atlas.project_2d(x[:10], "auto")[1] == "PCA"  # too few documents for UMAP's neighbours
    with pytest.raises(ValueError, match="at least 16 documents"):
        atlas.project_2d(x[:10], "umap")
    with pytest.raises(ValueError, match="projection must be"):
        atlas.project_2d(x, "tsne")


# -- clusters --------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), d=st.integers(1, 6), k=st.integers(1, 8))
def test_kmeans_ends_at_a_fixed_point_of_lloyds_iteration(seed, n, d, k):
    x = np.random.default_rng(seed).normal(size=(n, d))
    labels, centres = kmeans(x, k, seed=seed)
    assert len(centres) <= min(k, n) and sorted(set(labels.tolist())) == list(range(len(centres)))
    sizes = np.bincount(labels)
    assert np.all(sizes[:-1] >= sizes[1:])  # numbered by size
    for c in range(len(centres)):  # each centre is the mean of its rows ...
        np.testing.assert_allclose(centres[c], x[labels == c].mean(0), atol=1e-9)
    distances = ((x[:, None, :] - centres[None]) ** 2).sum(-1)  # ... and each row is nearest its centre
    assert np.all(distances[np.arange(n), labels] <= distances.min(1) + 1e-9)


def test_kmeans_finds_separated_blobs_and_drops_empty_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    truth = np.repeat([0, 1, 2], [30, 20, 10])
    x = centres[truth] + rng.normal(scale=0.5, size=(60, 2))
    labels, _ = kmeans(x, 3)
    assert labels.tolist() == truth.tolist()  # and numbered by size: 30, 20, 10
    labels, found = kmeans(np.array([[1.0, 1.0]] * 5 + [[2.0, 2.0]] * 3), 4)
    assert labels.tolist() == [0] * 5 + [1] * 3 and len(found) == 2
    assert kmeans(x, 3, seed=5)[0].tolist() == kmeans(x, 3, seed=5)[0].tolist()
    with pytest.raises(ValueError, match="positive int"):
        kmeans(x, 0)


def test_clusters_are_named_by_their_particular_words():
    vocabulary = ["the", "apple", "pear", "zebra", "lion", "once"]
    words = [np.array(w) for w in ([0, 1, 2], [0, 1, 2], [0, 1], [0, 3, 4], [0, 3, 4, 5], [0, 3])]
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert cluster_keywords(words, labels, vocabulary, n_words=2) == [["apple", "pear"], ["zebra", "lion"]]
    # one cluster: nothing is particular, so the commonest words
    assert cluster_keywords(words, np.zeros(6, dtype=int), vocabulary, n_words=2) == [["the", "apple"]]


# -- the page --------------------------------------------------------------------------------------
def documents(n):
    animals = ["zebra lion tiger", "apple pear plum", "engine wheel brake"]
    return [(f"d{i}", f"{i} {animals[i % 3]} " + "and more " * (i % 5)) for i in range(n)]


def test_atlas_data(model, tokenizer, tmp_path, plotly, no_umap):
    docs = documents(30) + [("blank", "  \n"), ("tag", "<b>bold</b> & </script> zebra")]
    summary = write_atlas(model, tokenizer, docs, tmp_path / "a.html", clusters=3, progress=False,
                          model_name="tiny")
    assert (summary.documents, summary.skipped, summary.clusters, summary.projection) == (31, 1, 3, "PCA")
    data = page_data(summary.path)
    points = data["points"]
    assert points["where"] == [w for w, _ in docs if w != "blank"]
    assert points["text"][-1] == "<b>bold</b> & </script> zebra"
    assert sum(c["size"] for c in data["clusters"]) == 31 and len(points["x"]) == len(points["cluster"]) == 31
    tokens = [tokenizer.encode_ordinary(t) for w, t in docs if w != "blank"]
    coords, shares = pca_2d(embed_token_lists(model, tokens))
    np.testing.assert_allclose(np.c_[points["x"], points["y"]], coords, rtol=1e-3, atol=1e-4 * np.abs(coords).max())
    assert data["projection"] == {"method": "PCA", "explained": pytest.approx(list(shares))}
    assert data["webgl"] is False and data["text_chars"] == 300


@pytest.fixture()
def one_thread():
    # On a busy shared machine two torch threads were several times slower than one (measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tens_of_thousands_of_documents(model, tokenizer, tmp_path, plotly, no_umap, one_thread):
    start = time.perf_counter()
    summary = write_atlas(model, tokenizer, documents(20_000), tmp_path / "big.html", batch_size=512,
                          max_tokens=8, progress=False)
    elapsed = time.perf_counter() - start
    data = page_data(summary.path)
    assert summary.documents == 20_000 and len(data["points"]["x"]) == 20_000 and data["webgl"] is True
    assert summary.clusters == 10  # the default for this many
    assert elapsed < 120, f"{elapsed:.0f} s for 20,000 short documents"  # ~10 s here on 2 busy cores


def test_cli_maps_files(hf_dir, tmp_path, capsys, plotly, no_umap):
    text = tmp_path / "docs.txt"
    text.write_text("\n\f\n".join(t for _, t in documents(12)), encoding="utf-8")
    chat = tmp_path / "chat.jsonl"
    chat.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"question {i}"}]})
                              for i in range(5)), encoding="utf-8")
    out = tmp_path / "atlas.html"
    assert main(["viz", "dataset", "--model", str(hf_dir), "--data", str(text), str(chat), "--out", str(out),
                 "--clusters", "2", "--quiet", "--device", "cpu", "--max-tokens", "32"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: 17 documents, 2 clusters, projected by PCA")
    data = page_data(out)
    assert data["points"]["where"][-1] == f"{chat}:5" and data["points"]["text"][-1] == "user: question 4"
    assert data["max_tokens"] == 32
    assert main(["viz", "dataset", "--model", str(hf_dir), "--data", str(text), "--limit", "4", "--quiet",
                 "--out", str(out)]) == 0
    assert "4 documents" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--data", "{tmp}/none.txt"], "none.txt does not exist"),
    (["--data", "{tmp}/docs.txt", "--projection", "umap"], "pip install umap-learn"),
    (["--data", "{tmp}/docs.txt", "--clusters", "25"], r"clusters must be an int in \[1, 24\]"),
    (["--data", "{tmp}/docs.txt", "--max-tokens", "65"], "longer than the model's context of 64"),
    (["--data", "{tmp}/empty.txt"], "no documents to map"),
])
def test_cli_errors(hf_dir, tmp_path, capsys, plotly, no_umap, argv, message):
    (tmp_path / "docs.txt").write_text("one\n\f\ntwo", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n\f\n", encoding="utf-8")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["viz", "dataset", "--model", str(hf_dir), "--quiet", "--out", str(tmp_path / "a.html"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastllm viz: error: ") and re.search(message, err), err
    assert "Traceback" not in err and not (tmp_path / "a.html").exists()
