"""Run a script in a fresh Python where some packages cannot be imported, as when they are not
installed, and record which module asked for them.

The subprocess's ``sys.meta_path`` is replaced, before anything is imported, by one finder
that is blind to the blocked top-level packages (``import triton`` raises
ModuleNotFoundError, ``importlib.util.find_spec("triton")`` is None, ``importlib.metadata``
finds no distribution) and otherwise defers to the interpreter's finders. ``asked_by(prefix)``
in the script lists the modules under ``prefix`` whose code asked for a blocked package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Iterable

_PRELUDE = """
import importlib.abc
import sys

BLOCKED = {blocked!r}


class Blocker(importlib.abc.MetaPathFinder):

    def __init__(self, finders):
        self.finders = finders
        self.importers = []  # (module whose code asked, package asked for)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            frame = sys._getframe(1)
            while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
                frame = frame.f_back
            self.importers.append((frame.f_globals.get("__name__", "?") if frame is not None else "?", name))
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return spec
        return None

    def find_distributions(self, *args, **kwargs):
        # importlib.metadata asks the same finders: a blocked package has no metadata either
        for finder in self.finders:
            for dist in getattr(finder, "find_distributions", lambda *a, **k: ())(*args, **kwargs):
                if (dist.metadata["Name"] or "").lower().replace("-", "_") not in BLOCKED:
                    yield dist

    def invalidate_caches(self):
        for finder in self.finders:
            if hasattr(finder, "invalidate_caches"):
                finder.invalidate_caches()


blocker = Blocker(list(sys.meta_path))
sys.meta_path[:] = [blocker]


def asked_by(prefix):
    return [module for module, _ in blocker.importers if module.startswith(prefix)]

"""


def run_without(blocked: Iterable[str], script: str, env_drop: Iterable[str] = ()) -> subprocess.CompletedProcess:
    """Run ``script`` (dedented) after the blocking prelude; ``env_drop`` names environment
    variables removed for the subprocess."""
    drop = set(env_drop)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    code = _PRELUDE.format(blocked=set(blocked)) + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
