"""``fastllm tokenizer ...``: train, encode, decode, stats, show.

Imports only the standard library at module level; the tokenizer is imported
inside the handlers.

``encode``, ``show`` and ``stats`` stream their input: it is read ``READ_BYTES`` at a
time, checked to be UTF-8, cut into chunks of about ``CHUNK_BYTES`` where no piece of
the split pattern crosses, and each chunk is encoded and written on its own, so
memory stays bounded on inputs of any size and the ids are those of the whole text.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator

from fastllm import options
from fastllm.options import flag

DEFAULT_TOKENIZER = "gpt2"
READ_BYTES = 1 << 20  # input read at a time
CHUNK_BYTES = 1 << 16  # target size of the chunks encoded one by one


def register(subparsers) -> None:
    """Adds ``fastllm tokenizer`` and its sub-commands."""
    parser = subparsers.add_parser("tokenizer", help="train, run and inspect BPE tokenizers")
    commands = parser.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    train = commands.add_parser("train", help="train a byte-level BPE vocabulary on text files")
    train.add_argument("files", nargs="+", help="UTF-8 text files")
    train.add_argument("--vocab-size", type=flag(options.positive_int, "--vocab-size"), required=True, help="number of ids, special tokens included")
    train.add_argument("--pattern", default="cl100k", help="split pattern: gpt2, cl100k, o200k or a regex (default cl100k)")
    train.add_argument("--special", action="append", default=[], metavar="TOKEN", help="a special token (repeatable)")
    train.add_argument("--min-frequency", type=flag(options.positive_int, "--min-frequency"), default=2, help="least count of a pair to merge (default 2)")
    train.add_argument("--out", required=True, help="output file")
    train.add_argument(
        "--format", choices=("fastllm", "tiktoken", "hf"), default=None,
        help="fastllm JSON (default), .tiktoken ranks, or HF tokenizer.json; default from --out's name",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(handler=_train)

    encode = commands.add_parser("encode", help="print the token ids of a text")
    _add_input_args(encode)
    encode.add_argument("--allow-special", action="store_true", help="encode special tokens in the text as their ids")
    encode.add_argument("--json", action="store_true", help="print a JSON list")
    encode.set_defaults(handler=_encode)

    decode = commands.add_parser("decode", help="print the text of token ids")
    decode.add_argument("ids", nargs="*", help="token ids, space- or comma-separated (default: stdin)")
    _add_tokenizer_args(decode)
    decode.add_argument("--strict", action="store_true", help="fail on invalid UTF-8 instead of printing U+FFFD")
    decode.set_defaults(handler=_decode)

    stats = commands.add_parser("stats", help="bytes per token and encode speed on a file")
    stats.add_argument("file", help="a UTF-8 text file")
    _add_tokenizer_args(stats)
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    stats.set_defaults(handler=_stats)

    show = commands.add_parser("show", help="show how a text splits into tokens")
    _add_input_args(show)
    color = show.add_mutually_exclusive_group()
    color.add_argument("--no-color", action="store_true", help="plain '|'-separated tokens")
    color.add_argument("--color", action="store_true", help="colours even when not writing to a terminal")
    show.add_argument("--ids", action="store_true", help="also print the ids")
    show.set_defaults(handler=_show)


def _add_tokenizer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer", "-t", default=DEFAULT_TOKENIZER,
        help="named encoding (gpt2, cl100k_base, o200k_base), tokenizer file (fastllm's or HF tokenizer.json), "
        f"data or HF checkpoint directory, or .tiktoken file with --pattern (default {DEFAULT_TOKENIZER})",
    )
    parser.add_argument("--pattern", default=None, help="split pattern of a .tiktoken file (gpt2, cl100k, o200k or a regex)")


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", help="the text (default: --file, else stdin)")
    parser.add_argument("--file", "-f", default=None, help="read the text from this UTF-8 file")
    _add_tokenizer_args(parser)


def _tokenizer(args):
    from fastllm.tokenizer import open_tokenizer

    return open_tokenizer(args.tokenizer, pattern=args.pattern)


def _not_utf8(name: str, offset: int) -> ValueError:
    return ValueError(f"{name}: not UTF-8 text (invalid byte at offset {offset})")


def read_utf8_file(path: str) -> str:
    """The whole text of a UTF-8 file; otherwise ValueError naming the file and the offset."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc.start) from None


def _utf8_size(text: str, name: str, offset: int = 0) -> int:
    """The UTF-8 length of ``text``, which starts at byte ``offset`` of input ``name``.
    Lone surrogates stand for bytes that were not UTF-8 (argv and text streams use
    surrogateescape): they are refused, not encoded as U+FFFD."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _not_utf8(name, offset + len(text[: exc.start].encode("utf-8"))) from None


def _decoded_blocks(handle, name: str) -> Iterator[str]:
    """The text of binary stream ``handle``, ``READ_BYTES`` at a time; invalid UTF-8
    raises ValueError with the stream offset of the first bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    fed = 0
    while True:
        data = handle.read(READ_BYTES)
        start = fed - len(decoder.getstate()[0])  # the decoder holds back an incomplete character
        fed += len(data)
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise _not_utf8(name, start + exc.start) from None
        if text:
            yield text
        if not data:
            return


def _text_blocks(stream, name: str) -> Iterator[str]:
    """The text of a text stream without a binary buffer (tests put a StringIO there)."""
    offset = 0
    while block := stream.read(READ_BYTES):
        offset += _utf8_size(block, name, offset)
        yield block


def _file_blocks(handle, name: str) -> Iterator[str]:
    with handle:
        yield from _decoded_blocks(handle, name)


def _chunks(blocks: Iterable[str], tokenizer, special_tokens: Iterable[str]) -> Iterator[str]:
    """The text of ``blocks`` cut into chunks that encode one by one to the ids of the
    whole text; a chunk never cuts through one of ``special_tokens``."""
    from fastllm import _core
    from fastllm.tokenizer.patterns import BUILTIN_PATTERNS

    if tokenizer.pattern not in BUILTIN_PATTERNS or tokenizer.pipeline is not None:
        # The chunker's cuts are exact only for the built-in patterns: a custom regex, or a
        # tokenizer.json pipeline (prefix spaces, NFC, added tokens), gets the whole text.
        text = "".join(blocks)
        if text:
            yield text
        return
    special_tokens = list(special_tokens)
    carry = ""
    for block in blocks:
        chunks = _core.text_chunks(carry + block, CHUNK_BYTES, tokenizer.pattern, special_tokens)
        carry = chunks.pop()  # ends where the block ends, not at a cut: it may still grow
        yield from chunks
    if carry:
        yield carry


def _input_chunks(args, tokenizer, special_tokens: Iterable[str]) -> Iterator[str]:
    """The chunks of the text argument, ``--file`` or stdin. Argument errors and a
    missing file raise here, before anything is written."""
    if args.text is not None and args.file is not None:
        raise ValueError("give the text or --file, not both")
    if args.text is not None:
        _utf8_size(args.text, "the text argument")
        blocks: Iterable[str] = [args.text] if args.text else []
    elif args.file is not None:
        blocks = _file_blocks(open(args.file, "rb"), args.file)
    elif getattr(sys.stdin, "buffer", None) is not None:
        blocks = _decoded_blocks(sys.stdin.buffer, "stdin")
    else:
        blocks = _text_blocks(sys.stdin, "stdin")
    return _chunks(blocks, tokenizer, special_tokens)


def _end_line_on_error(out, started: bool) -> None:
    """After a failure part way, ends the partial line so the error message starts its own."""
    if started:
        out.write("\n")
        out.flush()


def _train(args) -> int:
    from fastllm import Tokenizer

    fmt = args.format or _format_from_name(args.out)
    for path in args.files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    start = time.perf_counter()
    tokenizer = Tokenizer.train(
        list(args.files),
        args.vocab_size,
        pattern=args.pattern,
        special_tokens=args.special,
        min_frequency=args.min_frequency,
        show_progress=False if args.no_progress else None,
    )
    seconds = time.perf_counter() - start
    if fmt == "tiktoken":
        tokenizer.save_tiktoken(args.out)
    elif fmt == "hf":
        tokenizer.to_hf_json(args.out)
    else:
        tokenizer.save(args.out)
    print(
        f"trained {tokenizer.n_vocab} ids ({len(tokenizer.mergeable_tokens())} ranks, "
        f"{len(tokenizer.special_tokens)} special) in {seconds:.1f} s -> {args.out} ({fmt})"
    )
    return 0


def _format_from_name(path: str) -> str:
    name = os.path.basename(path)
    if name.endswith(".tiktoken"):
        return "tiktoken"
    if name == "tokenizer.json":
        return "hf"
    return "fastllm"


def _encode(args) -> int:
    tokenizer = _tokenizer(args)
    chunks = _input_chunks(args, tokenizer, tokenizer.special_tokens_set)
    allowed = "all" if args.allow_special else frozenset()
    out = sys.stdout
    # The same text as json.dumps(ids) or " ".join(ids), written chunk by chunk.
    opening, separator, closing = ("[", ", ", "]") if args.json else ("", " ", "")
    started = False
    try:
        for chunk in chunks:
            ids = tokenizer.encode(chunk, allowed_special=allowed)
            if ids:
                out.write((separator if started else opening) + separator.join(map(str, ids)))
                started = True
    except Exception:
        _end_line_on_error(out, started)
        raise
    out.write(("" if started else opening) + closing + "\n")
    return 0


def _decode(args) -> int:
    tokenizer = _tokenizer(args)
    raw = " ".join(args.ids) if args.ids else sys.stdin.read()
    ids = []
    for field in raw.replace(",", " ").replace("[", " ").replace("]", " ").split():
        try:
            ids.append(int(field))
        except ValueError:
            raise ValueError(f"{field!r} is not a token id (an integer)") from None
    sys.stdout.write(tokenizer.decode(ids, errors="strict" if args.strict else "replace") + "\n")
    return 0


def _stats(args) -> int:
    tokenizer = _tokenizer(args)
    times = []
    for _ in range(3):  # each pass streams the file again; only the encoding is timed
        n_bytes = n_chars = n_tokens = 0
        seconds = 0.0
        # Special tokens are ordinary text here, so the chunker must not treat them apart.
        for chunk in _chunks(_file_blocks(open(args.file, "rb"), args.file), tokenizer, ()):
            start = time.perf_counter()
            n_tokens += len(tokenizer.encode_ordinary(chunk))
            seconds += time.perf_counter() - start
            n_chars += len(chunk)
            n_bytes += len(chunk.encode("utf-8"))
        times.append(seconds)
    seconds = sorted(times)[1]
    result = {
        "file": args.file,
        "tokenizer": args.tokenizer,
        "bytes": n_bytes,
        "chars": n_chars,
        "tokens": n_tokens,
        "bytes_per_token": n_bytes / n_tokens if n_tokens else 0.0,
        "chars_per_token": n_chars / n_tokens if n_tokens else 0.0,
        "encode_seconds_median_of_3": seconds,
        "encode_mb_per_s": n_bytes / 1e6 / seconds if seconds > 0 else float("inf"),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"{key:<{width}}  {shown}")
    return 0


def _show(args) -> int:
    from fastllm.tokenizer.display import ANSI_BACKGROUNDS, token_pieces, visible

    tokenizer = _tokenizer(args)
    chunks = _input_chunks(args, tokenizer, tokenizer.special_tokens_set)
    use_color = args.color or (not args.no_color and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    out = sys.stdout
    n_pieces = n_tokens = n_bytes = 0
    # The ids are printed after the counts: they wait in a file that stays in memory only while small.
    with tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES, mode="w+", encoding="ascii") as ids_file:
        try:
            for chunk in chunks:
                ids = tokenizer.encode(chunk, allowed_special="all")
                # A chunk is whole characters, so no piece spans two chunks.
                pieces = [visible(piece.text) for piece in token_pieces(tokenizer, ids)]
                if use_color:
                    colors = (ANSI_BACKGROUNDS[(n_pieces + i) % len(ANSI_BACKGROUNDS)] for i in range(len(pieces)))
                    out.write("".join(f"\x1b[30;{c}m{piece}\x1b[0m" for c, piece in zip(colors, pieces)))
                elif pieces:
                    out.write(("|" if n_pieces else "") + "|".join(pieces))
                if args.ids and ids:
                    ids_file.write((" " if n_tokens else "") + " ".join(map(str, ids)))
                n_pieces += len(pieces)
                n_tokens += len(ids)
                n_bytes += len(chunk.encode("utf-8"))
        except Exception:
            _end_line_on_error(out, n_pieces > 0)
            raise
        out.write("\n")
        print(f"{n_tokens} tokens, {n_bytes} bytes")
        if args.ids:
            ids_file.seek(0)
            shutil.copyfileobj(ids_file, out)
            out.write("\n")
    return 0
