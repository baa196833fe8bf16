"""``fastllm demo``: from raw text to a small GPT in a few minutes on a laptop CPU.

1. gather a corpus (the built-in CPython documentation, or the user's files),
2. train a BPE tokenizer on it,
3. tokenize it into train/validation shards,
4. pre-train a small GPT,
5. report the validation loss against the unigram baseline, print a sample and write
   ``loss.png``, ``attention.png`` and ``report.html`` (the interactive report of a sentence).
The default corpus is the documentation text every CPython ships (``pydoc_data`` topics and
standard-library docstrings), so the demo needs no download.
"""

from __future__ import annotations

import importlib
import inspect
import shutil
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from fastllm.tokenizer import ENDOFTEXT, TOKENIZER_FILE
from fastllm.train.prepare import DOCUMENT_SEPARATOR


# -- default corpus ------------------------------------------------------------------------
# Modules whose docstrings are gathered, in this order. Modules that fail to import
# (minimal Python builds without sqlite3, lzma, ...) are skipped.
STDLIB_MODULES = (
    "builtins", "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "bz2",
    "calendar", "cmath", "codecs", "collections", "colorsys", "concurrent.futures",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "dis", "doctest", "email", "email.message", "enum", "filecmp", "fnmatch",
    "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "graphlib", "gzip",
    "hashlib", "heapq", "hmac", "html", "html.parser", "http.client", "http.server",
    "imaplib", "inspect", "io", "ipaddress", "itertools", "json", "locale", "logging",
    "lzma", "mailbox", "math", "mimetypes", "multiprocessing", "numbers", "operator",
    "optparse", "os", "pathlib", "pdb", "pickle", "platform", "poplib", "pprint",
    "profile", "pstats", "queue", "random", "re", "reprlib", "sched", "secrets",
    "selectors", "shelve", "shlex", "shutil", "signal", "smtplib", "socket", "sqlite3",
    "ssl", "statistics", "string", "struct", "subprocess", "sys", "sysconfig", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback",
    "types", "typing", "unicodedata", "unittest", "urllib.parse", "urllib.request",
    "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree",
    "zipfile", "zlib",
)


def pydoc_topics() -> list[str]:
    """The ``pydoc_data`` topic pages, sorted by topic name (empty when not shipped)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return []
    return [topics[name].strip() for name in sorted(topics) if topics[name].strip()]


def _member_docs(module) -> Iterator[str]:
    """Docstrings of the public classes/functions defined in ``module`` (and methods)."""
    for name in sorted(vars(module)):
        if name.startswith("_"):
            continue
        obj = getattr(module, name, None)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        doc = inspect.getdoc(obj)
        if doc:
            yield f"{name}\n{doc}"
        if inspect.isclass(obj):
            for attr in sorted(vars(obj)):
                if attr.startswith("_"):
                    continue
                member = vars(obj)[attr]
                member_doc = inspect.getdoc(member) if inspect.isroutine(member) else None
                if member_doc:
                    yield f"{name}.{attr}\n{member_doc}"


def module_docstrings(modules: tuple[str, ...] = STDLIB_MODULES) -> list[str]:
    """One document per importable module: its docstring and its members' docstrings."""
    documents = []
    for module_name in modules:
        with warnings.catch_warnings():  # deprecated aliases warn when touched
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(module_name)
            except Exception:  # noqa: BLE001 - an optional stdlib module may be missing
                continue
            parts = [f"Module {module_name}"]
            if module.__doc__:
                parts.append(inspect.cleandoc(module.__doc__))
            parts.extend(_member_docs(module))
        if len(parts) > 1:
            documents.append("\n\n".join(parts))
    return documents


def default_documents() -> list[str]:
    """All documents of the default corpus: pydoc topics, then module docstrings."""
    documents = pydoc_topics() + module_docstrings()
    if not documents:
        raise ValueError(
            "this Python ships neither pydoc_data nor docstrings; pass your own text files"
        )
    return documents


# Written between documents in the text file form of the corpus.


def write_default_corpus(path: str | Path) -> Path:
    """Writes the default corpus as one UTF-8 file; a line holding one form feed separates documents."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DOCUMENT_SEPARATOR.join(default_documents()), encoding="utf-8")
    return path


# -- demo ----------------------------------------------------------------------------------


@dataclass
class DemoSettings:
    out: str = "out/demo"
    files: list[str] = field(default_factory=list)  # empty: the built-in default corpus
    max_chars: int | None = None  # cut the corpus (for quick runs)
    vocab_size: int = 512
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    batch_size: int = 16
    max_steps: int = 600
    lr: float = 3e-3
    warmup_steps: int = 20
    eval_interval: int = 100
    max_eval_batches: int = 50
    sample_tokens: int = 60
    prompt: str = "The "
    seed: int = 1337
    progress: bool = True


# A run of well under a minute (used by the test suite): the same model on a smaller
# corpus for fewer steps. (Smaller models were tried: in this few tokens, 2-layer ones
# stayed at the unigram loss while the 4-layer one already went below it.)
QUICK = dict(max_chars=150_000, max_steps=60, eval_interval=20, max_eval_batches=10, sample_tokens=20)


def quick_settings(**overrides) -> DemoSettings:
    return replace(DemoSettings(**overrides), **{k: v for k, v in QUICK.items() if k not in overrides})


def choose_threads() -> int:
    """Torch CPU threads: the cores not already busy. On a loaded machine, extra threads
    made small-model training several times slower (measured), never faster."""
    import os

    import torch

    try:
        idle = (os.cpu_count() or 1) - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        idle = torch.get_num_threads()
    return max(1, min(torch.get_num_threads(), int(idle + 0.5)))


def _say(text: str = "") -> None:
    print(text, flush=True)


def _corpus(settings: DemoSettings) -> tuple[list[str], str]:
    """The documents and a description of where they come from."""
    if settings.files:
        from fastllm.train.prepare import file_chunks

        documents, current = [], []
        for path in settings.files:
            for chunk, ends in file_chunks(path, 1 << 20):
                current.append(chunk)
                if ends:
                    documents.append("".join(current))
                    current = []
        origin = f"your {len(settings.files)} file(s)"
    else:

        documents = default_documents()
        origin = "CPython's own documentation (pydoc topics + standard-library docstrings)"
    if settings.max_chars is not None:
        kept, total = [], 0
        for doc in documents:
            if total >= settings.max_chars:
                break
            kept.append(doc[: settings.max_chars - total])
            total += len(kept[-1])
        documents = kept
    if not any(documents):
        raise ValueError("the corpus is empty")
    return documents, origin


def run_demo(settings: DemoSettings) -> dict:
    import torch

    from fastllm import Tokenizer

    from fastllm.train.config import build_config
    from fastllm.train.metrics import read_log, save_loss_curve, unigram_entropy
    from fastllm.train.prepare import prepare_documents
    from fastllm.train.pretrain import LOG_FILE, Trainer

    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    threads = choose_threads()
    torch.set_num_threads(threads)
    _say("fastllm demo: raw text -> tokenizer -> data -> a small GPT, on this machine "
         f"({threads} CPU thread{'s' if threads > 1 else ''})\n")

    documents, origin = _corpus(settings)
    chars = sum(map(len, documents))
    _say(f"[1/5] corpus     {len(documents)} documents, {chars / 1e6:.2f} M characters of {origin}")

    t0 = time.perf_counter()
    # an iterator, not a list: Tokenizer.train reads a list as file paths
    tokenizer = Tokenizer.train(iter(documents), settings.vocab_size, special_tokens=[ENDOFTEXT])
    tokenizer.save(out / TOKENIZER_FILE)
    _say(f"[2/5] tokenizer  byte-level BPE, {tokenizer.n_vocab} tokens, trained in "
         f"{time.perf_counter() - t0:.1f} s -> {out / TOKENIZER_FILE}")

    data_dir = out / "data"
    meta = prepare_documents(documents, tokenizer, data_dir, progress=False, chunk_bytes=8192)
    n_train, n_val = meta["splits"]["train"]["tokens"], meta["splits"]["val"]["tokens"]
    _say(f"[3/5] data       {n_train:,} training and {n_val:,} validation tokens "
         f"({chars / (n_train + n_val):.2f} characters per token) -> {data_dir}")

    train_dir = out / "train"
    shutil.rmtree(train_dir, ignore_errors=True)  # a demo always starts fresh
    eval_batches = max(1, min(settings.max_eval_batches, (n_val - 1) // (settings.batch_size * settings.block_size)))
    cfg = build_config(overrides=dict(
        data=str(data_dir), out=str(train_dir), n_layer=settings.n_layer, n_head=settings.n_head,
        n_embd=settings.n_embd, block_size=settings.block_size, batch_size=settings.batch_size,
        max_steps=settings.max_steps, lr=settings.lr, min_lr=settings.lr / 10,
        warmup_steps=settings.warmup_steps, weight_decay=0.1, eval_interval=settings.eval_interval,
        eval_batches=eval_batches, checkpoint_interval=settings.max_steps, log_interval=5,
        seed=settings.seed, device="cpu", kernels="reference", resume=False, export=True,
        progress=settings.progress,
    ))
    trainer = Trainer(cfg, tokenizer=tokenizer)
    model = trainer.model
    _say(f"[4/5] training   GPT with {settings.n_layer} layers, width {settings.n_embd}, "
         f"context {settings.block_size}: {model.num_params(non_embedding=False) / 1e6:.2f} M parameters, "
         f"{settings.max_steps} steps of {settings.batch_size * settings.block_size} tokens")
    summary = trainer.run()

    baseline = unigram_entropy(data_dir, "val")
    final = summary["final_val_loss"]
    log = read_log(train_dir / LOG_FILE)
    loss_png = save_loss_curve(log, out / "loss.png", baseline=baseline, title="fastllm demo: pre-training loss")
    prompt_ids = tokenizer.encode_ordinary(settings.prompt)
    generated = model.generate(prompt_ids, max_new_tokens=settings.sample_tokens, temperature=0.8, top_k=40,
                               seed=settings.seed, stop_tokens=[tokenizer.eot_token])
    sample = tokenizer.decode(list(generated)[len(prompt_ids):])
    from fastllm.model import save_attention_map

    attention_png = out / "attention.png"
    save_attention_map(model, tokenizer, "The value of the attribute is returned.", layer=settings.n_layer - 1,
                       path=attention_png)
    from fastllm.model.visualize import write_report

    try:
        report_html = write_report(model, tokenizer, "The value of the attribute is returned.", out / "report.html",
                                   model_name="the demo's GPT")
    except ImportError as exc:  # plotly is in the viz extra
        report_html = f"no report ({exc})"

    _say("[5/5] results")
    _say(f"      unigram baseline (entropy of the validation tokens): {baseline:.3f} nats/token")
    verdict = (f"{baseline - final:.3f} below the baseline: the model uses context" if final < baseline
               else "not below the baseline yet: train for more steps")
    _say(f"      final validation loss:                              {final:.3f} nats/token ({verdict})")
    _say(f"      sample (temperature 0.8, top-k 40):\n\n{settings.prompt}{sample}\n")
    _say(f"      wrote {loss_png} and {attention_png}; the model is in {summary['model_dir']}")
    _say(f"      the interactive report (open it in a browser): {report_html}")
    _say(f"      (try: fastllm generate --model {summary['model_dir']} --prompt \"{settings.prompt.strip()}\")")
    _say(f"done in {time.perf_counter() - started:.0f} s")
    return {"baseline": baseline, "final_val_loss": final, "sample": sample, "loss_png": str(loss_png),
            "attention_png": str(attention_png), "report_html": str(report_html), "model_dir": summary["model_dir"],
            "summary": summary}
