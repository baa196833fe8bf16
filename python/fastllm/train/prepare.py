"""Tokenizing text into binary shards (``fastllm prepare``).

Documents stream through in bounded pieces: the Rust chunker (``fastllm._core.FileChunks``,
``text_chunks``; the one implementation the tokenizer trainer uses too) reads files in chunks
of about ``chunk_bytes`` bytes, cut only where the built-in split patterns always end a piece
(so the cut does not change the tokens), and batches of chunks are encoded in parallel by the
Rust tokenizer. Memory stays bounded by the batch size whatever the corpus size. An
end-of-text token follows every document. Chunks are dealt to the validation split at a steady
rate of ``val_fraction``, so both splits sample the whole corpus.

The new dataset is written into a staging folder inside ``out_dir`` and swapped in only when
complete: a failed preparation leaves the dataset it was replacing untouched.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from fastllm import _core
from fastllm.files import hold_directory
from fastllm.tokenizer import ENDOFTEXT

from .data import FORMAT, META_FILE, SPLITS, TOKENIZER_FILE, VERSION, ShardWriter, read_jsonl, token_dtype, write_meta

# In a text file, a line holding only a form feed separates documents; writers join with this.
DOCUMENT_SEPARATOR = "\n\f\n"
_SEPARATOR_LINE = re.compile(r"\f(?:\r\n|\r|\n|\Z)")
DEFAULT_CHUNK_BYTES = 32_768


def _might_continue_separator(text: str, line_start: bool) -> bool:
    """Whether ``text`` ends inside what may still become a separator line (``\\f`` then a newline)."""
    for tail in ("\f", "\f\r"):
        if text.endswith(tail):
            before = len(text) - len(tail)
            return (before == 0 and line_start) or (before > 0 and text[before - 1] in "\r\n")
    return False


def _split_documents(text: str, line_start: bool) -> list[str]:
    """``text`` cut at its separator lines (removed); ``line_start``: ``text`` starts a line."""
    parts, start = [], 0
    for match in _SEPARATOR_LINE.finditer(text):
        i = match.start()
        if (i == 0 and line_start) or (i > 0 and text[i - 1] in "\r\n"):
            parts.append(text[start:i])
            start = match.end()
    parts.append(text[start:])
    return parts


def document_chunks(
    documents: Iterable[str], chunk_bytes: int = DEFAULT_CHUNK_BYTES, pattern: str = "cl100k"
) -> Iterator[tuple[str, bool]]:
    """``(chunk, ends_document)`` for in-memory documents, cut by the Rust chunker for ``pattern``."""
    for document in documents:
        if not isinstance(document, str):
            raise TypeError(f"documents must be str, got {type(document).__name__}")
        pieces = _core.text_chunks(document, chunk_bytes, pattern, []) if len(document) > chunk_bytes // 4 else [document]
        pieces = pieces or [""]
        for i, piece in enumerate(pieces):
            yield piece, i == len(pieces) - 1


def _jsonl_chunks(path: Path, chunk_bytes: int, pattern: str) -> Iterator[tuple[str, bool]]:
    for line_no, record in read_jsonl(path):
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"{path}:{line_no}: expected an object with a string \"text\" field")
        yield from document_chunks([text], chunk_bytes, pattern)


def file_chunks(
    path: str | Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, pattern: str = "cl100k"
) -> Iterator[tuple[str, bool]]:
    """``(chunk, ends_document)`` for a file, streamed by the Rust chunker.

    A ``.jsonl`` file holds one document per line in its ``"text"`` field; any other file is
    UTF-8 text where a line holding a single form feed separates documents. Invalid UTF-8 is
    a ValueError naming the file and the byte offset.
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        yield from _jsonl_chunks(path, chunk_bytes, pattern)
        return
    pending, line_start = "", True
    for chunk, _offset in _core.FileChunks(path, chunk_bytes, pattern, []):
        pending += chunk  # joining chunks is always safe; a cut is only ever removed
        if _might_continue_separator(pending, line_start):
            continue
        *documents, last = _split_documents(pending, line_start)
        for document in documents:
            yield document, True
        if last:
            yield last, False
        line_start = pending.endswith(("\n", "\r"))
        pending = ""
    *documents, last = _split_documents(pending, line_start)
    for document in documents:
        yield document, True
    yield last, True


def file_documents(path: str | Path, max_chars: int | None = None) -> Iterator[tuple[str, str]]:
    """``(where, text)`` for each document of a file, for reading rather than training.

    A ``.jsonl`` line holds a ``"text"`` or a chat ``"messages"`` list (rendered by
    :func:`fastllm.train.chat_template.plain_text`); ``where`` is ``FILE:LINE``. Any other
    file is UTF-8 text cut at its form-feed lines, as :func:`file_chunks` reads it; ``where``
    is ``FILE#N`` (documents counted from 1). ``max_chars`` keeps only the start of each
    document (the rest is read past, never held), so memory stays bounded on huge documents.
    """
    from .chat_template import check_messages, plain_text

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} does not exist")
    if path.suffix == ".jsonl":
        for line_no, record in read_jsonl(path):
            where = f"{path}:{line_no}"
            if isinstance(record, dict) and isinstance(record.get("text"), str):
                text = record["text"]
            elif isinstance(record, dict) and "messages" in record:
                text = plain_text(check_messages(record["messages"], where))
            else:
                raise ValueError(f"{where}: expected an object with a string \"text\" or a chat \"messages\" list")
            yield where, text if max_chars is None else text[:max_chars]
        return
    kept: list[str] = []
    size, number = 0, 0
    for chunk, ends in file_chunks(path):
        if max_chars is None or size < max_chars:
            kept.append(chunk if max_chars is None else chunk[: max_chars - size])
            size += len(kept[-1])
        if ends:
            number += 1
            yield f"{path}#{number}", "".join(kept)
            kept, size = [], 0


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
    """Tokenizes ``(chunk, ends_document)`` pairs into shards under ``out_dir``; returns the metadata.

    ``out_dir`` is held for the whole run (:func:`fastllm.files.hold_directory`); the new dataset
    replaces an old one there only once it is complete.
    """
    eot = tokenizer.eot_token
    if eot is None:
        raise ValueError(
            f"the tokenizer has no {ENDOFTEXT} special token to put between documents; "
            f"train or load one with special_tokens=['{ENDOFTEXT}']"
        )
    router = _SplitRouter(val_fraction)
    out_dir = Path(out_dir)
    with hold_directory(out_dir):
        staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=out_dir))
        try:
            meta = _write_dataset(chunks, tokenizer, staging, router, shard_tokens, batch_chars, num_threads,
                                  progress, total_bytes, sources)
            _swap_in(staging, out_dir, meta)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return meta


def _write_dataset(chunks, tokenizer, out_dir: Path, router: _SplitRouter, shard_tokens, batch_chars, num_threads,
                   progress, total_bytes, sources) -> dict:
    from tqdm.auto import tqdm

    dtype = token_dtype(tokenizer.n_vocab)
    writers = {split: ShardWriter(out_dir, split, dtype, shard_tokens) for split in SPLITS}
    eot_array = np.array([tokenizer.eot_token], dtype=dtype)
    documents = text_chars = 0
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tokenizing", disable=not progress)
    try:
        with bar:
            for batch in _batches(iter(chunks), batch_chars):
                # One flat array for the batch: no Python int per token to convert back.
                flat = tokenizer.encode_ordinary_batch_to_numpy([text for text, _ in batch], num_threads=num_threads)
                ids, offsets = flat.ids.astype(dtype, copy=False), flat.offsets.tolist()
                for k, (text, ends_document) in enumerate(batch):
                    writer = writers[router.next_split()]
                    writer.write(ids[offsets[k] : offsets[k + 1]])
                    if ends_document:
                        writer.write(eot_array)
                        documents += 1
                    text_chars += len(text)
                    # (An ASCII str's length is its UTF-8 size: no copy of the text to count it.)
                    bar.update(len(text) if text.isascii() else len(text.encode("utf-8")))
    finally:
        splits = {split: {"tokens": w.tokens, "shards": w.close()} for split, w in writers.items()}
    if splits["train"]["tokens"] == 0 or (router.val_fraction > 0 and text_chars == 0):
        where = f" ({', '.join(sources)})" if sources else ""
        raise ValueError(f"no text to prepare: the input{where} is empty")
    if router.val_fraction > 0 and splits["val"]["tokens"] == 0:
        raise ValueError(
            "the corpus is too small for a validation split at this chunk size: "
            "pass more text, a smaller --chunk-bytes, or --val-fraction 0"
        )
    tokenizer.save(out_dir / TOKENIZER_FILE)
    return {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype.str,
        "vocab_size": tokenizer.n_vocab,
        "eot_token": tokenizer.eot_token,
        "tokenizer": TOKENIZER_FILE,
        "documents": documents,
        "val_fraction": router.val_fraction,
        "sources": sources or [],
        "splits": splits,
    }


_DATASET_FILE = re.compile(r"(?:train|val)_\d{6}\.bin")


def _swap_in(staging: Path, out_dir: Path, meta: dict) -> None:
    """Replaces the dataset in ``out_dir`` by the complete one in ``staging``.

    ``meta.json`` goes first and comes back last, so a crash in between leaves a directory
    that reads as unfinished, never a mix of old and new. Files that are not part of a
    dataset are left alone.
    """
    (out_dir / META_FILE).unlink(missing_ok=True)
    for old in out_dir.iterdir():
        if old.is_file() and (old.name == TOKENIZER_FILE or _DATASET_FILE.fullmatch(old.name)):
            old.unlink()
    for new in staging.iterdir():
        new.replace(out_dir / new.name)
    write_meta(out_dir, meta)


def prepare_documents(
    documents: Iterable[str], tokenizer, out_dir, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, **kwargs
) -> dict:
    """Tokenizes in-memory documents (see :func:`prepare_chunks` for the options)."""
    return prepare_chunks(document_chunks(documents, chunk_bytes, tokenizer.pattern), tokenizer, out_dir, **kwargs)


def prepare_files(
    paths: Iterable[str | Path], tokenizer, out_dir, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, **kwargs
) -> dict:
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
            yield from file_chunks(path, chunk_bytes, tokenizer.pattern)

    return prepare_chunks(chunks(), tokenizer, out_dir, total_bytes=total, sources=[str(p) for p in paths], **kwargs)
