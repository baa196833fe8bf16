"""Makes sure the browser tests of the HTML pages have a browser: Debian's chromium.

    python tools/install_browser.py

Run by ``make test``. When no chromium is found (see ``tests/support/html_pages.py``) and this
runs as root on a machine with apt, it installs Debian's ``chromium`` package; otherwise it
says what to do. It never fails the build: without a browser those tests are skipped, each
saying why. (Playwright, which drives the browser, comes with the ``test`` extra; its own
browser download is not used.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.html_pages import find_chromium  # noqa: E402 - the tests' own rule for finding it


def main() -> int:
    found = find_chromium()
    if found:
        print(f"browser for the page tests: {found}")
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("no chromium: the browser tests will be skipped (as root on Debian/Ubuntu: apt-get install chromium)")
        return 0
    print("installing Debian's chromium for the browser tests (apt-get install chromium)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "fonts-liberation"]):
        if subprocess.call(command, env=env) != 0:
            print(f"`{' '.join(command)}` failed: the browser tests will be skipped")
            return 0
    print(f"browser for the page tests: {find_chromium()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
