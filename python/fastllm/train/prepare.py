"""Tokenizing text into binary shards (``fastllm prepare``).

Documents stream through in bounded pieces: files are read line by line into chunks
of about ``chunk_chars`` characters, cut only where the GPT-2/cl100k/o200k split
patterns always end a piece (so the cut does not change the tokens), and batches of
chunks are encoded in parallel by the Rust tokenizer. Memory stays bounded by the
batch size whatever the corpus size. An end-of-text token follows every document. Chunks are dealt to the
validation split at a steady rate of ``val_fraction``, so both splits sample the
whole corpus.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .data import FORMAT, TOKENIZER_FILE, VERSION, ShardWriter, read_jsonl, token_dtype, write_meta

DOCUMENT_SEPARATOR_LINE = "\f"
# Places where the GPT-2, cl100k and o200k split patterns always end a piece, whatever
# follows: before a letter that starts a line after a non-space character, and before a
# space between two letters. Cutting there leaves the tokens unchanged.
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=[A-Za-z])|(?<=[A-Za-z])(?= [A-Za-z])")
# Text with no safe place to cut is cut here anyway (this may change a token or two).
HARD_LIMIT_CHARS = 1 << 20


def cut_point(text: str, chunk_chars: int) -> int | None:
    """Where to cut ``text`` into a chunk: the last safe place within ``chunk_chars``, else
    the first one beyond it, else ``None`` (wait for more text) until the hard limit."""
    hard = max(chunk_chars, HARD_LIMIT_CHARS)
    best = None
    for match in _SAFE_CUT.finditer(text, 1, min(len(text), chunk_chars)):
        best = match.start()
    if best:
        return best
    match = _SAFE_CUT.search(text, chunk_chars, hard)
    if match:
        return match.start()
    return hard if len(text) > hard else None


def _split_chunk(text: str, chunk_chars: int) -> Iterator[str]:
    """Cuts a whole document into chunks of about ``chunk_chars`` (see :func:`cut_point`)."""
    while len(text) > chunk_chars:
        cut = cut_point(text, chunk_chars)
        if cut is None:
            break
        yield text[:cut]
        text = text[cut:]
    if text:
        yield text


def document_chunks(documents: Iterable[str], chunk_chars: int) -> Iterator[tuple[str, bool]]:
    """``(chunk, ends_document)`` for in-memory documents."""
    for document in documents:
        if not isinstance(document, str):
            raise TypeError(f"documents must be str, got {type(document).__name__}")
        pieces = list(_split_chunk(document, chunk_chars)) or [""]
        for i, piece in enumerate(pieces):
            yield piece, i == len(pieces) - 1


def _jsonl_chunks(path: Path, chunk_chars: int) -> Iterator[tuple[str, bool]]:

    for line_no, record in read_jsonl(path):
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"{path}:{line_no}: expected an object with a string \"text\" field")
        yield from document_chunks([text], chunk_chars)


def file_chunks(path: str | Path, chunk_chars: int) -> Iterator[tuple[str, bool]]:
    """``(chunk, ends_document)`` for a file, read line by line.

    A ``.jsonl`` file holds one document per line in its ``"text"`` field; any other
    file is UTF-8 text where a line holding a single form feed separates documents.
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        yield from _jsonl_chunks(path, chunk_chars)
        return
    pending: list[str] = []
    size, next_try = 0, chunk_chars
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            line_start = True
            for line in iter(lambda: handle.readline(max(chunk_chars, 1 << 16)), ""):
                is_separator = line_start and line.rstrip("\r\n") == DOCUMENT_SEPARATOR_LINE
                line_start = line.endswith("\n")  # readline's limit may end a read mid-line
                if is_separator:
                    yield "".join(pending), True
                    pending, size, next_try = [], 0, chunk_chars
                    continue
                pending.append(line)
                size += len(line)
                if size > next_try:
                    text = "".join(pending)
                    while (cut := cut_point(text, chunk_chars)) is not None:
                        yield text[:cut], False
                        text = text[cut:]
                    pending, size = [text], len(text)
                    next_try = max(chunk_chars, 2 * size)  # rescan only after real growth
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
    yield "".join(pending), True


class _SplitRouter:
    """Deals chunks to train/val at a steady rate: every 1/val_fraction-th chunk is val."""

    def __init__(self, val_fraction: float):
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.val_fraction = val_fraction
        self.credit = 0.5

    def next_split(self) -> str:
        self.credit += self.val_fraction
        if self.credit >= 1.0:
            self.credit -= 1.0
            return "val"
        return "train"


def _batches(chunks: Iterator[tuple[str, bool]], batch_chars: int) -> Iterator[list[tuple[str, bool]]]:
    batch, size = [], 0
    for chunk in chunks:
        batch.append(chunk)
        size += len(chunk[0])
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def prepare_chunks(
    chunks: Iterable[tuple[str, bool]],
    tokenizer,
    out_dir: str | Path,
    *,
    val_fraction: float = 0.1,
    shard_tokens: int = 100_000_000,
    batch_chars: int = 2_000_000,
    num_threads: int | None = None,
    progress: bool = True,
    total_bytes: int | None = None,
    sources: list[str] | None = None,
) -> dict:
    """Tokenizes ``(chunk, ends_document)`` pairs into shards under ``out_dir``; returns the metadata."""
    from tqdm.auto import tqdm

    eot = tokenizer.eot_token
    if eot is None:
        raise ValueError(
            "the tokenizer has no <|endoftext|> special token to put between documents; "
            "train or load one with special_tokens=['<|endoftext|>']"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.n_vocab)
    writers = {split: ShardWriter(out_dir, split, dtype, shard_tokens) for split in ("train", "val")}
    router = _SplitRouter(val_fraction)
    eot_array = np.array([eot], dtype=dtype)
    documents = 0
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tokenizing", disable=not progress)
    with bar:
        for batch in _batches(iter(chunks), batch_chars):
            encoded = tokenizer.encode_ordinary_batch([text for text, _ in batch], num_threads=num_threads)
            for (text, ends_document), ids in zip(batch, encoded):
                writer = writers[router.next_split()]
                writer.write(np.asarray(ids, dtype=dtype))
                if ends_document:
                    writer.write(eot_array)
                    documents += 1
                bar.update(len(text.encode("utf-8")))
    splits = {split: {"tokens": w.tokens, "shards": w.close()} for split, w in writers.items()}
    if splits["train"]["tokens"] == 0:
        raise ValueError("no text to prepare: the input is empty")
    if val_fraction > 0 and splits["val"]["tokens"] == 0:
        raise ValueError(
            "the corpus is too small for a validation split at this chunk size: "
            "pass more text, a smaller --chunk-chars, or --val-fraction 0"
        )
    tokenizer.save(out_dir / TOKENIZER_FILE)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype.str,
        "vocab_size": tokenizer.n_vocab,
        "eot_token": eot,
        "tokenizer": TOKENIZER_FILE,
        "documents": documents,
        "val_fraction": val_fraction,
        "sources": sources or [],
        "splits": splits,
    }
    write_meta(out_dir, meta)
    return meta


def prepare_documents(documents: Iterable[str], tokenizer, out_dir, *, chunk_chars: int = 32_768, **kwargs) -> dict:
    """Tokenizes in-memory documents (see :func:`prepare_chunks` for the options)."""
    return prepare_chunks(document_chunks(documents, chunk_chars), tokenizer, out_dir, **kwargs)


def prepare_files(paths: Iterable[str | Path], tokenizer, out_dir, *, chunk_chars: int = 32_768, **kwargs) -> dict:
    """Tokenizes text/JSONL files, with a progress bar over their total size."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no input files given")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"input file {path} does not exist")
    total = sum(path.stat().st_size for path in paths)

    def chunks():
        for path in paths:
            yield from file_chunks(path, chunk_chars)

    return prepare_chunks(chunks(), tokenizer, out_dir, total_bytes=total, sources=[str(p) for p in paths], **kwargs)
