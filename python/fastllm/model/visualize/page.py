"""Self-contained HTML pages: everything inlined, nothing fetched.

A page is one file that opens from disk with no network: Plotly's offline bundle (the
``plotly`` package's minified plotly.js, about 4.8 MB), the page's own style and
script (``assets/``), and its data as JSON in a ``<script type="application/json">`` element.
A Content-Security-Policy forbids every request, so a page that tried one would fail loudly in
the browser's console rather than quietly reach the network.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

ASSETS = Path(__file__).with_name("assets")
DATA_ELEMENT = "fastllm-data"
# Inline scripts and styles only; images from data: and blob: URLs (Plotly's "download plot").
# Plotly's WebGL traces (regl) compile their draw calls at run time, hence 'unsafe-eval'.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)


def plotly_js() -> str:
    """plotly.js from the ``plotly`` package (``pip install 'fastllm[viz]'``)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ImportError("the HTML pages need plotly: pip install 'fastllm[viz]' (or pip install plotly)") from None
    return get_plotlyjs()


def json_for_script(data) -> str:
    """``data`` as JSON that cannot end its ``<script>`` element or open a comment inside it."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _script(text: str) -> str:
    # "</script" cannot occur in the bundles (it would have ended their own tag on every site
    # that inlines them); checked anyway, since a page that silently cut its script is worse.
    if "</script" in text.lower():
        raise ValueError("a script to inline holds '</script'")
    return f"<script>{text}</script>\n"


def render_page(title: str, body_asset: str, script_asset: str, data) -> str:
    """The HTML of one page: ``assets/<body_asset>`` as the body, then the data, plotly.js,
    ``assets/common.js`` and ``assets/<script_asset>``."""
    css = (ASSETS / "page.css").read_text(encoding="utf-8")
    body = (ASSETS / body_asset).read_text(encoding="utf-8")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n",
        body,
        f"<script type=\"application/json\" id=\"{DATA_ELEMENT}\">{json_for_script(data)}</script>\n",
        _script(plotly_js()),
        _script((ASSETS / "common.js").read_text(encoding="utf-8")),
        _script((ASSETS / script_asset).read_text(encoding="utf-8")),
        "</body>\n</html>\n",
    ])
