"""Build the tokenizer encode benchmark's sub-corpora (one per language or script, and code).

    python benches/bench_tokenizer_corpus.py [--out bench-data/tokenizer] [--mb 30] [--seed 0]

``benches/bench_tokenizer.py`` takes its fresh ("cold") slices from these files. Each is made
of real text shipped in Debian packages, fetched like ``bench_corpus.py`` does (``apt-get
download`` into ``bench-data/debs/``, ``dpkg-deb -x``; nothing is installed):

========  ==========================================================================
file      documents
========  ==========================================================================
en        Linux 6.1 ``Documentation/`` (.rst/.txt), the Python 3.11 docs' reST sources,
          debian-reference-en (HTML reduced to text), fortunes-min
latin     debian-reference de/es/fr/it/pt, fortunes de/es/it/pl/cs/br
ja        debian-reference-ja, manpages-ja
zh        debian-reference zh-cn/zh-tw, fortunes-zh, manpages-zh
ru        fortunes-ru, manpages-ru
uk        manpages-uk
code-c    Linux 6.1 C sources (.c/.h of kernel/, mm/, fs/ext4, net/ipv4, lib/, ...)
code-py   the Python 3.11 standard library's .py files (libpython3.11-stdlib)
========  ==========================================================================

Manual pages are roff: macro lines keep their text arguments, comments and layout requests are
dropped and escapes such as ``\\fB`` or ``\\-`` are resolved, so what remains is the page's text
(with its English option names and examples, as translated technical text has). Every file
(fortune cookie, manual page) is one document; documents that are not UTF-8 are skipped. The
documents of one sub-corpus are sorted, shuffled with ``--seed`` and joined with blank lines up
to ``--mb`` megabytes (10**6 bytes). ``manifest.json`` records, for each file, its size, share
of non-ASCII bytes, sha256, and the package versions it came from.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_corpus as bc  # noqa: E402  (download/unpack helpers and the Linux/Python/HTML readers)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench-data" / "tokenizer"
PYLIB = "libpython3.11-stdlib"


_LINUX_CACHE: dict[Path, tuple[list[bytes], list[bytes]]] = {}


def _linux(root: Path, code: bool):
    """Linux documentation (code=False) or C sources (code=True), from the source tarball
    (read once, streamed: it is never unpacked to disk)."""
    import glob
    import tarfile

    if root not in _LINUX_CACHE:
        docs, sources = [], []
        tarballs = glob.glob(str(root / "usr/src/linux-source-*.tar.*"))
        if tarballs:
            with tarfile.open(tarballs[0], "r:*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    rel = member.name.split("/", 1)[-1]
                    if rel.startswith("Documentation/") and rel.endswith(bc.LINUX_DOC_SUFFIXES):
                        docs.append(tar.extractfile(member).read())
                    elif rel.startswith(bc.LINUX_CODE_DIRS) and rel.endswith(bc.LINUX_CODE_SUFFIXES):
                        sources.append(tar.extractfile(member).read())
        _LINUX_CACHE[root] = (docs, sources)
    yield from _LINUX_CACHE[root][1 if code else 0]


def _python_sources(root: Path):
    for path in sorted(root.glob("usr/lib/python3*/**/*.py")):
        if path.is_file() and not path.is_symlink():
            yield path.read_bytes()


_ROFF_TEXT_MACROS = {"SH", "SS", "B", "I", "BI", "IB", "BR", "RB", "IR", "RI", "SM", "SB", "TP", "IP", "UR", "MT"}
_ROFF_NAMED = {"em": "\u2014", "en": "\u2013", "aq": "'", "dq": '"', "lq": "\u201c", "rq": "\u201d",
               "bu": "\u2022", "co": "\u00a9", "rg": "\u00ae", "mu": "\u00d7", "hy": "-", "ti": "~",
               "ha": "^", "oq": "\u2018", "cq": "\u2019", "Fo": "\u00ab", "Fc": "\u00bb", "<=": "<=",
               ">=": ">=", "->": "->", "<-": "<-", "ga": "`", "rs": "\\", "at": "@", "sh": "#", "Do": "$"}
_ROFF_ESCAPE = re.compile(r"\\(f\[[^\]]*\]|f\(..|f.|\(..|\[[^\]]*\]|\*\(..|\*\[[^\]]*\]|\*.|s[+-]?\d+|[-e&|^ c\\0~'`.%,/])")


def _roff_escape(match: re.Match) -> str:
    esc = match.group(1)
    if esc.startswith("(") or (esc.startswith("[") and len(esc) > 2):
        return _ROFF_NAMED.get(esc[1:3] if esc.startswith("(") else esc[1:-1], "")
    return {"-": "-", "e": "\\", "\\": "\\", " ": " ", "0": " ", "~": " ", "'": "'", "`": "`", ".": ".", "%": ""}.get(esc, "")


def roff_text(page: str) -> str:
    """The text of a manual page in roff, without the markup (good enough to tokenize)."""
    out = []
    for line in page.splitlines():
        if line.startswith((".\\\"", "'\\\"", "\\\"")) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            if not parts or parts[0] not in _ROFF_TEXT_MACROS or len(parts) == 1:
                continue
            line = parts[1].replace('"', "")
        line = _ROFF_ESCAPE.sub(_roff_escape, line).rstrip()
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def _manpages(root: Path):
    for path in sorted(root.glob("usr/share/man/**/*.gz")):
        if path.is_symlink():
            continue
        raw = gzip.decompress(path.read_bytes())
        text = bc.utf8(raw)
        if text is not None:
            yield roff_text(text).encode("utf-8")


def _debref(lang: str):
    return (f"debian-reference-{lang}", bc.debref_documents)


def _fortunes(pkg: str):
    return (pkg, bc.fortune_documents)


LINUX_DOCS = (bc.LINUX, lambda root: _linux(root, code=False))
SUBCORPORA = {
    "en": [LINUX_DOCS, (bc.PYDOC, bc.pydoc_documents), _debref("en"), _fortunes("fortunes-min")],
    "latin": [_debref(l) for l in ("de", "es", "fr", "it", "pt")]
    + [_fortunes(f"fortunes-{l}") for l in ("de", "es", "it", "pl", "cs", "br")],
    "ja": [_debref("ja"), ("manpages-ja", _manpages)],
    "zh": [_debref("zh-cn"), _debref("zh-tw"), _fortunes("fortunes-zh"), ("manpages-zh", _manpages)],
    "ru": [_fortunes("fortunes-ru"), ("manpages-ru", _manpages)],
    "uk": [("manpages-uk", _manpages)],
    "code-c": [(bc.LINUX, lambda root: _linux(root, code=True))],
    "code-py": [(PYLIB, _python_sources)],
}


def build(out: Path, work: Path, mb: float, seed: int, names: list[str]) -> dict:
    packages = sorted({pkg for name in names for pkg, _ in SUBCORPORA[name]})
    debs = bc.download(packages, work / "debs")
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"seed": seed, "mb": mb, "files": {}}
    for name in names:
        docs: list[str] = []
        used = []
        for pkg, reader in SUBCORPORA[name]:
            if pkg not in debs:
                print(f"  {name}: {pkg} could not be downloaded; left out", file=sys.stderr)
                continue
            used.append(debs[pkg].name)
            for raw in reader(bc.unpack(debs[pkg], work / "unpacked")):
                text = bc.utf8(raw)
                if text is not None and text.strip():
                    docs.append(text.strip())
        docs.sort()
        random.Random(seed).shuffle(docs)
        limit = int(mb * 1e6)
        chunks, size = [], 0
        for doc in docs:
            data = doc.encode("utf-8") + b"\n\n"
            if size + len(data) > limit:
                continue  # a smaller document later may still fit
            chunks.append(data)
            size += len(data)
        blob = b"".join(chunks)
        (out / f"{name}.txt").write_bytes(blob)
        non_ascii = sum(1 for b in blob if b >= 0x80) / max(1, len(blob))
        manifest["files"][name] = {"bytes": len(blob), "documents": len(chunks), "available_documents": len(docs),
                                   "non_ascii_bytes": round(non_ascii, 3),
                                   "sha256": hashlib.sha256(blob).hexdigest(), "packages": used}
        print(f"  {name:8s} {len(blob) / 1e6:6.2f} MB  {len(chunks):6d} documents  "
              f"non-ASCII bytes {non_ascii:5.1%}", file=sys.stderr)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--work", type=Path, default=ROOT / "bench-data", help="cache folder for .debs and unpacked packages")
    ap.add_argument("--mb", type=float, default=30.0, help="cap on each sub-corpus, MB (10**6 bytes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=",".join(SUBCORPORA), help="comma-separated subset")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in SUBCORPORA]
    if unknown:
        ap.error(f"unknown sub-corpora {unknown}; choose from {list(SUBCORPORA)}")
    build(args.out, args.work, args.mb, args.seed, names)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
