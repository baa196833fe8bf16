"""The README's pictures of the two HTML pages: docs/report.png and docs/atlas.png.

    make demo                                   # trains the demo model (out/demo/train/model)
    .venv/bin/python tools/viz_screenshots.py   # --model DIR --out docs/

Writes the report of a sentence and the atlas of the demo's corpus (CPython's documentation)
with that model, opens each in headless chromium (the tests' browser, tests/support/html_pages.py)
and saves a screenshot as a small palette PNG.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.html_pages import launch, visit, why_no_browser  # noqa: E402

PROMPT = "The value of the attribute is returned when the attribute is found."


def small_png(png: bytes, path: Path, colours: int = 256) -> int:
    """Saves a screenshot with a palette of ``colours`` (pages are mostly flat colour); returns its size."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "out/demo/train/model"), help="model directory (default: the demo's)")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for report.png and atlas.png")
    args = parser.parse_args()
    reason = why_no_browser()
    if reason:
        raise SystemExit(f"no browser: {reason}")

    from playwright.sync_api import sync_playwright

    from fastllm import Tokenizer
    from fastllm.demos.pretraining import default_documents
    from fastllm.model import GPT
    from fastllm.model.visualize import write_atlas, write_report

    model, tokenizer = GPT.from_pretrained(args.model), Tokenizer.from_pretrained(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        report = write_report(model, tokenizer, PROMPT, Path(tmp) / "report.html", model_name="the demo's GPT")
        documents = [(text.split("\n", 1)[0][:60], text) for text in default_documents()]
        atlas = write_atlas(model, tokenizer, documents, Path(tmp) / "atlas.html", projection="pca",
                            model_name="the demo's GPT").path
        browser = launch(playwright)

        seen = visit(browser, report, width=1180, height=860)
        page = seen.page
        layer = model.config.n_layer - 1
        page.click(f"#head-picker button[data-layer='{layer}'][data-head='1']")
        page.wait_for_timeout(300)
        page.evaluate("document.getElementById('attention-section').scrollIntoView()")
        box = page.locator("#attention-plot").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.6)
        page.wait_for_timeout(300)
        print(f"{out / 'report.png'}: {small_png(page.screenshot(), out / 'report.png') // 1024} KB")
        assert not seen.errors, seen.errors

        seen = visit(browser, atlas, width=1180, height=760)
        page = seen.page
        # hover the first document of the largest cluster, to show its text
        page.mouse.move(*page.evaluate("""() => {
            const gd = document.getElementById('atlas-plot'), box = gd.getBoundingClientRect();
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, trace = gd.data[0];
            return [box.left + xa._offset + xa.l2p(trace.x[0]), box.top + ya._offset + ya.l2p(trace.y[0])];
        }"""))
        page.wait_for_timeout(400)
        print(f"{out / 'atlas.png'}: {small_png(page.screenshot(), out / 'atlas.png') // 1024} KB")
        assert not seen.errors, seen.errors
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
