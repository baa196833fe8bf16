"""The built-in default corpus: documentation text that every CPython install ships.

It is the ``pydoc_data`` topic pages (the language reference text behind ``help()``)
plus the docstrings of a fixed list of standard-library modules. Nothing is
downloaded and the project commits no third-party text: the corpus is gathered from
the running interpreter, deterministically (fixed module list, sorted names), so the
same Python version always yields the same documents. A few MB of English prose with
code samples, which is enough to train a tokenizer and a small GPT for the demo.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from pathlib import Path
from typing import Iterator

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
DOCUMENT_SEPARATOR = "\n\f\n"


def write_default_corpus(path: str | Path) -> Path:
    """Writes the default corpus as one UTF-8 file; a line holding one form feed separates documents."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DOCUMENT_SEPARATOR.join(default_documents()), encoding="utf-8")
    return path
