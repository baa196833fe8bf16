"""Installs the package's runtime dependencies and the named extras from pyproject.toml.

    python tools/install_extras.py torch test bench

Used by the Makefile so the dependency lists live in one place (pyproject.toml);
the package itself is then built in place by ``maturin develop``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11: pip vendors the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml defines {sorted(optional)}")
    reqs = list(project["dependencies"])
    for extra in extras:
        # A self-reference such as "fastllm[torch,test]" names other extras, not a package to fetch.
        reqs += [r for r in optional[extra] if not r.startswith(project["name"] + "[")]
    return reqs


def main() -> int:
    reqs = requirements(sys.argv[1:])
    return subprocess.call([sys.executable, "-m", "pip", "install", "-q", "maturin>=1.7,<2", *reqs])


if __name__ == "__main__":
    raise SystemExit(main())
