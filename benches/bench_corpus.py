"""Build the tokenizer-training benchmark corpus from real text shipped in Debian packages.

    python benches/bench_corpus.py [--mb 100] [--out bench-data/corpus.txt] [--seed 0]

Downloads (``apt-get download``, cached under ``bench-data/debs/``) and unpacks
(``dpkg-deb -x``, nothing is installed) these packages:

* ``linux-source-6.1``: ``Documentation/`` (reStructuredText and plain text) and C sources
  of a few subsystems, read straight out of the source tarball;
* ``python3.11-doc``: the reStructuredText sources of the Python documentation;
* ``debian-reference-*`` in nine languages: the HTML guide, reduced to its text;
* ``fortunes-*`` in several languages: every cookie is one document.

Every file (every fortune cookie) is one document. Documents that are not valid UTF-8 are
skipped. All documents are shuffled with a fixed seed, so that any prefix of the corpus is
a representative mix, and written separated by blank lines until ``--mb`` megabytes
(10**6 bytes) are reached. The output depends only on the package versions and the seed;
``corpus.manifest.json`` beside it records both, with the corpus' size and sha256.
``--mb`` prefixes of the output are also what ``bench_tokenizer_train.py --mb`` uses.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import html.parser
import json
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench-data" / "corpus.txt"

LINUX = "linux-source-6.1"
PYDOC = "python3.11-doc"
DEBREF_LANGS = ["en", "de", "es", "fr", "it", "ja", "pt", "zh-cn", "zh-tw"]
FORTUNES = ["fortunes-min", "fortunes-de", "fortunes-es", "fortunes-it", "fortunes-ru",
            "fortunes-br", "fortunes-pl", "fortunes-cs", "fortunes-zh", "fortunes-bg"]
# Kernel source directories whose C files are taken (besides all of Documentation/).
LINUX_CODE_DIRS = ("kernel/", "mm/", "fs/ext4/", "fs/btrfs/", "net/ipv4/", "net/core/",
                   "lib/", "drivers/gpu/drm/i915/", "drivers/net/ethernet/intel/", "block/")
LINUX_DOC_SUFFIXES = (".rst", ".txt")
LINUX_CODE_SUFFIXES = (".c", ".h")


def download(packages: list[str], debs: Path) -> dict[str, Path]:
    """apt-get download each package into `debs` unless a .deb for it is already cached."""
    debs.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    missing = []
    for pkg in packages:
        cached = sorted(debs.glob(f"{pkg}_*.deb"))
        if cached:
            found[pkg] = cached[-1]
        else:
            missing.append(pkg)
    if missing:
        print(f"downloading {len(missing)} packages: {' '.join(missing)}", file=sys.stderr)
        for pkg in missing:
            r = subprocess.run(["apt-get", "download", pkg], cwd=debs)
            if r.returncode != 0:
                print(f"  could not download {pkg}; skipping it", file=sys.stderr)
                continue
            found[pkg] = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
    return found


def unpack(deb: Path, dest: Path) -> Path:
    target = dest / deb.stem
    if not (target / ".done").exists():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        (target / ".done").touch()
    return target


def utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _TextOfHtml(html.parser.HTMLParser):
    """Collects the text of an HTML page (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_text(page: str) -> str:
    p = _TextOfHtml()
    p.feed(page)
    lines = (line.rstrip() for line in "".join(p.parts).splitlines())
    out, blank = [], False
    for line in lines:  # collapse runs of blank lines left by the markup
        if line:
            out.append(line)
            blank = False
        elif not blank:
            out.append("")
            blank = True
    return "\n".join(out).strip()


def linux_documents(root: Path):
    tarballs = glob.glob(str(root / "usr/src/linux-source-*.tar.*"))
    if not tarballs:
        return
    with tarfile.open(tarballs[0], "r:*") as tar:
        for member in tar:  # streamed: the tarball is never unpacked to disk
            if not member.isfile():
                continue
            rel = member.name.split("/", 1)[-1]
            wanted = (rel.startswith("Documentation/") and rel.endswith(LINUX_DOC_SUFFIXES)) or (
                rel.startswith(LINUX_CODE_DIRS) and rel.endswith(LINUX_CODE_SUFFIXES))
            if wanted:
                yield tar.extractfile(member).read()


def pydoc_documents(root: Path):
    for path in sorted(root.glob("usr/share/doc/python3*/html/_sources/**/*.txt")):
        yield path.read_bytes()


def debref_documents(root: Path):
    for path in sorted(root.glob("usr/share/debian-reference/*.html")):
        text = utf8(path.read_bytes())
        if text is not None:
            yield html_text(text).encode("utf-8")


def fortune_documents(root: Path):
    for path in sorted(root.glob("usr/share/games/fortunes/**/*")):
        if not path.is_file() or path.suffix in (".dat", ".u8") or path.is_symlink():
            continue
        for cookie in path.read_bytes().split(b"\n%\n"):
            yield cookie


def collect(work: Path) -> tuple[list[str], list[str]]:
    """All documents, and the .deb files they came from."""
    packages = [LINUX, PYDOC] + [f"debian-reference-{l}" for l in DEBREF_LANGS] + FORTUNES
    debs = download(packages, work / "debs")
    docs: list[str] = []
    skipped = 0
    sources = [(LINUX, linux_documents), (PYDOC, pydoc_documents)]
    sources += [(f"debian-reference-{l}", debref_documents) for l in DEBREF_LANGS]
    sources += [(f, fortune_documents) for f in FORTUNES]
    for pkg, reader in sources:
        if pkg not in debs:
            continue
        n0, size = len(docs), 0
        for raw in reader(unpack(debs[pkg], work / "unpacked")):
            text = utf8(raw)
            if text is None:
                skipped += 1
                continue
            text = text.strip()
            if text:
                docs.append(text)
                size += len(raw)
        print(f"  {pkg:28s} {len(docs) - n0:7d} documents {size / 1e6:8.1f} MB", file=sys.stderr)
    print(f"skipped {skipped} documents that are not valid UTF-8", file=sys.stderr)
    return docs, sorted(deb.name for deb in debs.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=100.0, help="corpus size in MB (10**6 bytes)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=ROOT / "bench-data",
                    help="cache folder for .debs and unpacked packages")
    args = ap.parse_args(argv)
    docs, deb_names = collect(args.work)
    if not docs:
        print("no documents: could the Debian packages be downloaded?", file=sys.stderr)
        return 1
    docs.sort()  # independent of archive/filesystem order, then shuffled with the seed
    random.Random(args.seed).shuffle(docs)
    limit = int(args.mb * 1e6)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    written = 0
    digest = hashlib.sha256()
    with open(tmp, "wb") as f:
        for doc in docs:
            data = doc.encode("utf-8") + b"\n\n"
            if written + len(data) > limit:
                break
            f.write(data)
            digest.update(data)
            written += len(data)
    os.replace(tmp, args.out)
    manifest = {"bytes": written, "sha256": digest.hexdigest(), "seed": args.seed, "mb": args.mb,
                "packages": deb_names}
    args.out.with_name(args.out.stem + ".manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {args.out} ({written / 1e6:.1f} MB of {sum(map(len, docs)) / 1e6:.1f} MB available)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
