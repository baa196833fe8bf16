"""Looking at fastllm's HTML pages in tests: their inlined data, and a real headless browser.

The browser is Debian's ``chromium`` (``apt-get install chromium``; ``tools/install_browser.py``
installs it for ``make test`` when running as root) driven by Playwright (the ``test`` extra),
never Playwright's own browser download. ``FASTLLM_CHROMIUM`` names another executable.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_DATA = re.compile(r'<script type="application/json" id="fastllm-data">(.*?)</script>', re.S)


def page_data(path) -> dict:
    """The JSON a page carries (``fastllm.model.visualize.page``)."""
    found = _DATA.findall(Path(path).read_text(encoding="utf-8"))
    assert len(found) == 1, "a page carries exactly one data element"
    return json.loads(found[0])


def find_chromium() -> Optional[str]:
    """The chromium executable the tests use, or None."""
    named = os.environ.get("FASTLLM_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def why_no_browser() -> Optional[str]:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install 'fastllm[test]')"
    if find_chromium() is None:
        return ("no chromium executable (apt-get install chromium, or run tools/install_browser.py as root; "
                "FASTLLM_CHROMIUM names another one)")
    return None


def launch(playwright):
    """A headless chromium: Debian's, run as root in CI, hence no sandbox."""
    return playwright.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])


@dataclass
class Visit:
    """An open page and what it did: console errors (and uncaught exceptions), every request."""

    page: object
    url: str
    errors: List[str] = field(default_factory=list)
    requests: List[str] = field(default_factory=list)

    def close(self) -> None:
        self.page.context.close()


def visit(browser, path, width: int = 1280, height: int = 900, wait_ready: bool = True) -> Visit:
    """Opens ``path`` from disk in a fresh context; with ``wait_ready``, waits for the page's
    scripts to mark ``<body data-ready>`` (every plot drawn)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    url = Path(path).resolve().as_uri()
    seen = Visit(page, url)
    page.on("console", lambda message: message.type == "error" and seen.errors.append(message.text))
    page.on("pageerror", lambda error: seen.errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: seen.requests.append(request.url))
    page.goto(url)
    if wait_ready:
        page.wait_for_selector("body[data-ready]", state="attached", timeout=30_000)
    return seen


def distinct_colours(png: bytes) -> int:
    """How many colours a screenshot holds (a blank one holds one or two)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return len(image.getcolors(maxcolors=1 << 24))


def pixels_near(png: bytes, colour: str, opacity: float = 1.0, tolerance: int = 12) -> int:
    """How many pixels of a screenshot show ``colour`` (``#rrggbb``) drawn at ``opacity`` on white."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    seen = opacity * rgb + (1 - opacity) * 255
    return int((np.abs(pixels - seen).max(-1) <= tolerance).sum())
