"""A map of a dataset: every document embedded by a model, projected to 2-D, clustered, and drawn
as a zoomable scatter plot with hover text and a search box (one self-contained HTML file).

* embedding: the mean of the model's last hidden states (after the final LayerNorm) over the
  document's first ``max_tokens`` tokens; documents are batched by length and padded on the
  right, which leaves the real positions untouched (attention is causal);
* projection: PCA (exact, from the covariance matrix), or UMAP when ``umap-learn`` is installed;
* clusters: k-means (a k-means++ start, then Lloyd's iterations until no label changes) on the
  centred embeddings (their first 64 principal axes when wider), numbered by size; each is
  named by the words most particular to it.

Memory: the token ids of every document (at most ``max_tokens`` each) and one embedding per
document are held; the documents themselves only up to ``8 * max_tokens`` characters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fastllm.files import write_text_atomic

from ..generate import eval_mode
from .page import render_page

DEFAULT_TEXT_CHARS = 300  # characters of each document kept for hover text and search
CHARS_PER_TOKEN_BOUND = 8  # a document is read up to this many characters per token embedded
KEYWORD_CHARS = 2000  # characters of each document whose words name the clusters
MAX_CLUSTERS = 24
CLUSTER_DIMENSIONS = 64  # k-means runs on at most this many principal axes of the embeddings
UMAP_MIN_DOCUMENTS = 16  # UMAP needs neighbours; fewer documents are projected with PCA
WEBGL_ABOVE = 2000  # more points than this are drawn with WebGL (SVG slows down)
# Qualitative colours, distinguishable side by side (Plotly's "Dark24").
CLUSTER_COLOURS = (
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86",
    "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE",
    "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038",
)
_WORD = re.compile(r"[^\W\d_]{3,}")


@dataclass
class AtlasSummary:
    path: Path
    documents: int
    skipped: int  # empty documents, not drawn
    clusters: int
    projection: str  # "PCA" or "UMAP"
    explained: Optional[Tuple[float, float]]  # PCA: the share of variance of each axis


# -- reading -------------------------------------------------------------------------------------
@dataclass
class _Corpus:
    where: List[str]
    snippets: List[str]
    tokens: List[np.ndarray]
    words: List[np.ndarray]  # ids of the distinct words of each document's start
    vocabulary: List[str]
    skipped: int


def _read(tokenizer, documents, max_tokens: int, text_chars: int, limit: Optional[int], progress: bool) -> _Corpus:
    from tqdm.auto import tqdm

    corpus = _Corpus([], [], [], [], [], 0)
    word_ids: dict = {}
    max_chars = CHARS_PER_TOKEN_BOUND * max_tokens
    group: List[Tuple[str, str]] = []

    def flush():
        encoded = tokenizer.encode_ordinary_batch([text for _, text in group])
        for (where, text), ids in zip(group, encoded):
            corpus.where.append(where)
            corpus.snippets.append(text[:text_chars])
            corpus.tokens.append(np.asarray(ids[:max_tokens], dtype=np.int64))
            words = {word_ids.setdefault(w.lower(), len(word_ids)) for w in _WORD.findall(text[:KEYWORD_CHARS])}
            corpus.words.append(np.fromiter(sorted(words), dtype=np.int64, count=len(words)))
        group.clear()

    with tqdm(desc="reading", unit=" doc", disable=not progress, dynamic_ncols=True) as bar:
        for number, document in enumerate(documents, start=1):
            if limit is not None and len(corpus.where) + len(group) >= limit:
                break
            where, text = document if isinstance(document, tuple) else (f"#{number}", document)
            if not isinstance(text, str):
                raise TypeError(f"documents must be str or (where, str) pairs, got {type(text).__name__}")
            if not text.strip():
                corpus.skipped += 1
                continue
            group.append((where, text[:max_chars]))
            if len(group) == 1024:
                flush()
            bar.update()
        if group:
            flush()
    corpus.vocabulary = sorted(word_ids, key=word_ids.get)
    return corpus


# -- embedding -----------------------------------------------------------------------------------
@torch.no_grad()
def embed_token_lists(model, token_lists: Sequence[Sequence[int]], batch_size: int = 32,
                      progress: bool = False) -> np.ndarray:
    """``(documents, n_embd)`` float32: the mean of the final hidden states over each token list.

    Lists are batched by length and padded on the right; causal attention keeps the padding
    out of every real position, so a batch gives what each list gives alone.
    """
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    if len(lengths) and lengths.min() == 0:
        raise ValueError(f"token list {int(np.argmin(lengths))} is empty")
    if len(lengths) and lengths.max() > model.config.block_size:
        raise ValueError(f"a token list has {int(lengths.max())} tokens, longer than the context of {model.config.block_size}")
    device = next(model.parameters()).device
    out = np.zeros((len(token_lists), model.config.n_embd), dtype=np.float32)
    order = np.argsort(-lengths, kind="stable")
    with eval_mode(model), tqdm(total=len(order), desc="embedding", unit=" doc", disable=not progress,
                                dynamic_ncols=True) as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            idx = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                idx[r, : lengths[i]] = torch.as_tensor(token_lists[i], dtype=torch.long)
            hidden = model.hidden_states(idx.to(device))[0].float()
            real = (torch.arange(width, device=device)[None] < torch.as_tensor(lengths[rows], device=device)[:, None])
            summed = (hidden * real[..., None]).sum(1)
            out[rows] = (summed / real.sum(1, keepdim=True)).cpu().numpy()
            bar.update(len(rows))
    return out


# -- projection ----------------------------------------------------------------------------------
def principal_components(x: np.ndarray, m: int) -> Tuple[np.ndarray, List[float]]:
    """The coordinates of the rows of ``x`` on its ``m`` principal axes (zero columns past the
    rank of ``x``'s width), and each axis' share of the variance. Each axis' sign is fixed (its
    largest loading is positive), so the result is reproducible."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    centred = x - x.mean(0)
    cov = centred.T @ centred / max(n - 1, 1)
    values, vectors = np.linalg.eigh(cov)  # ascending
    take = min(m, d)
    values, vectors = values[::-1][:take].clip(min=0), vectors[:, ::-1][:, :take]
    signs = np.sign(vectors[np.abs(vectors).argmax(0), np.arange(take)])
    vectors = vectors * np.where(signs == 0, 1, signs)
    coords = np.zeros((n, m))
    coords[:, :take] = centred @ vectors
    total = float(np.trace(cov))
    shares = [float(v / total) if total > 0 else 0.0 for v in values] + [0.0] * (m - take)
    return coords, shares


def pca_2d(x: np.ndarray) -> Tuple[np.ndarray, Tuple[float, float]]:
    """The rows of ``x`` on their two principal axes, and each axis' share of the variance."""
    coords, shares = principal_components(x, 2)
    return coords, (shares[0], shares[1])


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def projection_method(method: str, n_documents: int) -> str:
    """``"PCA"`` or ``"UMAP"`` for a requested ``method``: ``"pca"``, ``"umap"`` (needs
    ``umap-learn``) or ``"auto"`` (UMAP when installed and there are enough documents)."""
    if method not in ("auto", "pca", "umap"):
        raise ValueError(f"projection must be auto, pca or umap, got {method!r}")
    if method == "umap":
        if not umap_available():
            raise ImportError("the UMAP projection needs umap-learn: pip install umap-learn (or use PCA)")
        if n_documents < UMAP_MIN_DOCUMENTS:
            raise ValueError(f"UMAP needs at least {UMAP_MIN_DOCUMENTS} documents, got {n_documents}; use PCA")
        return "UMAP"
    if method == "auto" and n_documents >= UMAP_MIN_DOCUMENTS and umap_available():
        return "UMAP"
    return "PCA"


def umap_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed)
    return np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float64)


def project_2d(x: np.ndarray, method: str = "auto", seed: int = 0) -> Tuple[np.ndarray, str, Optional[Tuple[float, float]]]:
    """``(coords, method used, PCA's variance shares or None)`` (see :func:`projection_method`)."""
    if projection_method(method, len(x)) == "UMAP":
        return umap_2d(x, seed), "UMAP", None
    coords, shares = pca_2d(x)
    return coords, "PCA", shares


# -- clusters ------------------------------------------------------------------------------------
def _squared_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return ((x * x).sum(1, keepdim=True) - 2 * x @ centres.T + (centres * centres).sum(1)[None]).clamp_min(0)


def kmeans(x: np.ndarray, k: int, seed: int = 0, restarts: int = 1, max_iter: int = 100) -> Tuple[np.ndarray, np.ndarray]:
    """``(labels, centres)``: ``k``-means of the rows of ``x`` (float64), numbered by cluster size
    (largest first); clusters left empty (fewer distinct rows than ``k``) are dropped.

    On return the labels are each row's nearest centre and the centres are their rows' means,
    unless ``max_iter`` ran out first.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the number of clusters must be a positive int, got {k!r}")
    data = torch.as_tensor(np.asarray(x, dtype=np.float64))
    n = len(data)
    if n == 0:
        raise ValueError("no documents to cluster")
    k = min(k, n)
    generator = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(restarts):
        # k-means++: each next centre drawn with probability proportional to its squared distance
        chosen = [int(torch.randint(n, (1,), generator=generator))]
        nearest = _squared_distances(data, data[chosen]).min(1).values
        while len(chosen) < k:
            total = float(nearest.sum())
            if total <= 0:  # every row sits on a centre already
                break
            pick = int(torch.multinomial(nearest / total, 1, generator=generator))
            chosen.append(pick)
            nearest = torch.minimum(nearest, _squared_distances(data, data[pick : pick + 1])[:, 0])
        centres = data[chosen].clone()
        labels = _squared_distances(data, centres).argmin(1)
        for _ in range(max_iter):
            members = torch.nn.functional.one_hot(labels, len(centres)).to(data.dtype)  # (n, k)
            counts = members.sum(0)
            sums = members.T @ data  # a product: index_add_ was many times slower on the CPU
            filled = counts > 0
            centres[filled] = sums[filled] / counts[filled][:, None]
            new = _squared_distances(data, centres).argmin(1)
            if torch.equal(new, labels):
                break
            labels = new
        inertia = float(_squared_distances(data, centres).gather(1, labels[:, None]).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centres)
    _, labels, centres = best
    sizes = torch.bincount(labels, minlength=len(centres))
    # by size, then by first member, so the numbering does not depend on the restart's order
    first = torch.full((len(centres),), n, dtype=torch.long).scatter_reduce(0, labels, torch.arange(n), "amin")
    order = sorted((c for c in range(len(centres)) if sizes[c] > 0), key=lambda c: (-int(sizes[c]), int(first[c])))
    relabel = torch.full((len(centres),), -1, dtype=torch.long)
    relabel[order] = torch.arange(len(order))
    return relabel[labels].numpy(), centres[order].numpy()


def default_clusters(n_documents: int) -> int:
    """About sqrt(n / 2) clusters, between 1 and 10."""
    return max(1, min(10, round(math.sqrt(n_documents / 2))))


def cluster_keywords(words: Sequence[np.ndarray], labels: np.ndarray, vocabulary: Sequence[str],
                     n_words: int = 3) -> List[List[str]]:
    """For each cluster, the words most particular to it: ranked by ``p log(p / q)`` where ``p`` is
    the share of the cluster's documents holding the word and ``q`` the share of all documents
    (words in fewer than two of the cluster's documents count only in a cluster of one)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    v = len(vocabulary)
    if v == 0 or k == 0:
        return [[] for _ in range(k)]
    doc_labels = np.repeat(labels, [len(w) for w in words])
    flat = np.concatenate(list(words)) if len(words) else np.zeros(0, dtype=np.int64)
    counts = np.bincount(doc_labels * v + flat, minlength=k * v).reshape(k, v).astype(np.float64)
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    q = counts.sum(0) / len(labels)
    names = []
    for c in range(k):
        p = counts[c] / sizes[c]
        support = counts[c] >= min(2, sizes[c])
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(support & (p > 0), p * np.log(p / q), -np.inf)
        if not np.any(score > 0):  # nothing particular (one cluster): the commonest words
            score = np.where(support, p, -np.inf)
        top = [i for i in np.argsort(-score, kind="stable")[:n_words] if np.isfinite(score[i])]
        names.append([vocabulary[i] for i in top])
    return names


# -- the page ------------------------------------------------------------------------------------
def _rounded(values: np.ndarray, digits: int = 5) -> list:
    scale = float(np.abs(values).max()) if values.size else 0.0
    decimals = max(0, digits - 1 - (math.floor(math.log10(scale)) if scale > 0 else 0))
    return np.round(values.astype(np.float64), decimals).tolist()


def write_atlas(
    model,
    tokenizer,
    documents: Iterable[Union[str, Tuple[str, str]]],
    path,
    *,
    clusters: Optional[int] = None,
    projection: str = "auto",
    batch_size: int = 32,
    max_tokens: Optional[int] = None,
    text_chars: int = DEFAULT_TEXT_CHARS,
    limit: Optional[int] = None,
    seed: int = 0,
    progress: bool = True,
    model_name: Optional[str] = None,
) -> AtlasSummary:
    """Embeds, projects and clusters ``documents`` (texts, or ``(where, text)`` pairs such as
    :func:`fastllm.train.prepare.file_documents` yields) and writes the atlas page to ``path``.

    ``clusters``: k for k-means (default: :func:`default_clusters`, at most ``MAX_CLUSTERS``);
    ``max_tokens``: tokens embedded per document (default: the model's context); ``text_chars``:
    characters of each document shown on hover and searched; ``limit``: the first documents only.
    """
    projection_method(projection, UMAP_MIN_DOCUMENTS)  # a bad choice fails before the work
    if clusters is not None and (isinstance(clusters, bool) or not isinstance(clusters, int)
                                 or not 1 <= clusters <= MAX_CLUSTERS):
        raise ValueError(f"clusters must be an int in [1, {MAX_CLUSTERS}], got {clusters!r}")
    max_tokens = model.config.block_size if max_tokens is None else max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= model.config.block_size:
        raise ValueError(f"max_tokens must be an int in [1, {model.config.block_size}] (the model's context), got {max_tokens!r}")
    for name, value in (("text_chars", text_chars), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}")

    corpus = _read(tokenizer, documents, max_tokens, text_chars, limit, progress)
    n = len(corpus.tokens)
    if n == 0:
        raise ValueError(f"no documents to map ({corpus.skipped} empty ones skipped)")
    method = projection_method(projection, n)
    embeddings = embed_token_lists(model, corpus.tokens, batch_size, progress)
    # k-means runs on the first principal axes: the same cost for any model width, and the axes
    # left out hold little variance (with n_embd <= CLUSTER_DIMENSIONS, a rotation: no change)
    components, variance = principal_components(embeddings, max(2, min(CLUSTER_DIMENSIONS, embeddings.shape[1])))
    if method == "UMAP":
        coords, shares = umap_2d(embeddings, seed), None
    else:
        coords, shares = components[:, :2], (variance[0], variance[1])
    labels, _ = kmeans(components, clusters or default_clusters(n), seed)
    names = cluster_keywords(corpus.words, labels, corpus.vocabulary)
    sizes = np.bincount(labels)
    data = {
        "model": model_name,
        "documents": n,
        "skipped": corpus.skipped,
        "max_tokens": max_tokens,
        "text_chars": text_chars,
        "projection": {"method": method, "explained": list(shares) if shares else None},
        "clusters": [{"name": " · ".join(words) or f"cluster {c}", "size": int(sizes[c])}
                     for c, words in enumerate(names)],
        "colours": list(CLUSTER_COLOURS),
        "webgl": n > WEBGL_ABOVE,
        "points": {
            "x": _rounded(coords[:, 0]), "y": _rounded(coords[:, 1]), "cluster": labels.tolist(),
            "where": corpus.where, "text": corpus.snippets,
        },
    }
    title = f"fastllm atlas: {model_name}" if model_name else "fastllm atlas"
    out = write_text_atomic(path, render_page(title, "atlas.html", "atlas.js", data))
    return AtlasSummary(out, n, corpus.skipped, len(names), method, shares)
