"""The HTML pages of ``fastllm viz`` in a real headless browser (Debian's chromium, Playwright):
no console error, something drawn, no request but the page itself, the controls change the
picture, and the numbers shown are the model's. One browser for the session, a tiny model."""

import html

import numpy as np
import pytest
import torch

from fastllm.kernels import force_backend
from fastllm.model import GPT, attention_maps
from fastllm.model.visualize import atlas, write_atlas, write_report
from tests.support.html_pages import distinct_colours, page_data, pixels_near, visit

PROMPT = "the caf\u00e9 <b>is</b> open & the"
DOCUMENTS = [(f"doc{i}", f"{i} " + ["zebra lion tiger", "apple pear plum", "engine wheel brake"][i % 3] + " and more")
             for i in range(40)] + [("tagged", "<b>bold</b> & <script>zebra</script>")]


@pytest.fixture(scope="module")
def tiny(hf_dir):
    pytest.importorskip("plotly", reason="the HTML pages need plotly (pip install 'fastllm[viz]')")
    return GPT.from_pretrained(hf_dir)


@pytest.fixture(scope="module")
def report(browser, tiny, tokenizer, tmp_path_factory):
    with force_backend("reference"):
        path = write_report(tiny, tokenizer, PROMPT, tmp_path_factory.mktemp("report") / "report.html", top_k=4)
    seen = visit(browser, path)
    yield seen
    seen.close()


@pytest.fixture(scope="module")
def atlas_page(browser, tiny, tokenizer, tmp_path_factory):
    with force_backend("reference"):
        summary = write_atlas(tiny, tokenizer, DOCUMENTS, tmp_path_factory.mktemp("atlas") / "atlas.html",
                              clusters=3, projection="pca", progress=False)
    seen = visit(browser, summary.path)
    yield seen
    seen.close()


def page_data_of(seen):
    return page_data(seen.url.removeprefix("file://"))


def check_clean(seen):
    assert seen.errors == []
    assert seen.requests == [seen.url]  # the page itself, nothing else
    assert seen.page.evaluate("performance.getEntriesByType('resource').length") == 0


def check_points_drawn(seen, opacity=0.75, clusters=None):
    """The colour of each cluster (default: all) is on screen, and no "WebGL is not supported"
    cover hides the plot."""
    page = seen.page
    assert page.locator("#atlas-plot .no-webgl").count() == 0
    shot = page.locator("#atlas-plot").screenshot()
    data = page_data_of(seen)
    for c in range(len(data["clusters"])) if clusters is None else clusters:
        assert pixels_near(shot, data["colours"][c], opacity) > 20, f"cluster {c} is not drawn"


def plot_pixel(page, plot_id: str, x: float, y: float):
    """Where the data point (x, y) of a Plotly plot is on the screen."""
    return page.evaluate(
        """([id, x, y]) => {
            const gd = document.getElementById(id), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const box = gd.getBoundingClientRect();
            return [box.left + xa._offset + xa.l2p(x), box.top + ya._offset + ya.l2p(y)];
        }""", [plot_id, x, y])


# -- the harness catches what it claims to ----------------------------------------------------------
def test_the_checks_see_errors_requests_and_blank_pages(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<body data-ready="1"><script>fetch("http://127.0.0.1:9/x").catch(() => {});'
                    'console.error("boom")</script></body>')
    seen = visit(browser, page)
    try:
        seen.page.wait_for_timeout(200)
        assert "boom" in seen.errors and "http://127.0.0.1:9/x" in seen.requests
        assert distinct_colours(seen.page.screenshot()) <= 2  # nothing drawn
    finally:
        seen.close()


# -- the report --------------------------------------------------------------------------------------
def test_report_renders_with_no_error_and_no_request(report):
    check_clean(report)
    page = report.page
    for plot in ("attention-plot", "confidence-plot", "lens-plot"):
        assert page.locator(f"#{plot} .main-svg").count() >= 1, plot
    assert distinct_colours(page.screenshot(full_page=True)) > 100
    assert page.locator("#tokens .piece").count() == len(page_data_of(report)["pieces"])
    assert page.locator("#architecture details.block").count() == 2
    buttons = page.evaluate("[...document.querySelectorAll('.modebar-btn')].map((b) => b.dataset.title)")
    assert "Download plot as a PNG" in buttons  # the modebar is there, with nothing that sends a chart away
    assert not [b for b in buttons if "share" in b.lower() or "cloud" in b.lower() or "studio" in b.lower()]


def test_choosing_another_head_changes_the_picture_to_the_models_weights(report, tiny):
    page = report.page
    ids = page_data_of(report)["tokens"]
    page.click("#head-picker button[data-layer='0'][data-head='0']")
    before = page.locator("#attention-plot").screenshot()
    page.click("#head-picker button[data-layer='1'][data-head='2']")
    page.wait_for_function("document.getElementById('attention-title').textContent === 'layer 1, head 2'")
    page.wait_for_timeout(100)
    after = page.locator("#attention-plot").screenshot()
    assert before != after and distinct_colours(after) > 20
    assert page.locator("#head-picker button.selected").get_attribute("title") == "layer 1, head 2"

    with force_backend("reference"):
        expected = attention_maps(tiny, ids, 1)[2].numpy()
    shown = page.evaluate("document.getElementById('attention-plot').data[0].z")
    seq = len(ids)
    for q in range(seq):
        assert shown[q][q + 1:] == [None] * (seq - q - 1)  # nothing drawn after the query
        np.testing.assert_allclose(shown[q][: q + 1], expected[q, : q + 1], atol=1e-6)

    # hovering a cell shows its weight
    q, k = seq - 2, 3
    page.mouse.move(*plot_pixel(page, "attention-plot", k, q))
    hover = page.locator("#attention-plot .hovertext")
    hover.wait_for(timeout=5_000)
    assert f"weight {expected[q, k]:.4f}" in hover.text_content()


def test_block_button_picks_its_layer(report):
    page = report.page
    page.click("#head-picker button[data-layer='0'][data-head='3']")
    page.click("#architecture details.block[data-layer='1'] .show-attention")
    page.wait_for_function("document.getElementById('attention-title').textContent === 'layer 1, head 3'")


def test_predictions_shown_are_the_models(report, tiny):
    ids = page_data_of(report)["tokens"]
    with torch.no_grad(), force_backend("reference"):
        probs = torch.softmax(tiny(torch.tensor([ids])).logits[0].double(), -1)
    top = torch.topk(probs, 4)
    rows = report.page.evaluate(
        """() => [...document.querySelectorAll('#predictions tbody tr')].map((tr) =>
            [...tr.querySelectorAll('td.pred')].map((td) => [Number(td.dataset.id),
                                                            td.querySelector('.prob').textContent]))""")
    assert len(rows) == len(ids)
    for row, want_ids, want_probs in zip(rows, top.indices.tolist(), top.values.tolist()):
        assert [token for token, _ in row] == want_ids
        assert [text for _, text in row] == [f"{p:.4f}" for p in want_probs]
    lens_last = report.page.evaluate("document.getElementById('lens-plot').data[0].text.at(-1)")
    data = page_data_of(report)
    assert lens_last == [data["labels"][str(i)] for i in top.indices[:, 0].tolist()]


# -- the atlas ---------------------------------------------------------------------------------------
def test_atlas_renders_with_no_error_and_no_request(atlas_page):
    check_clean(atlas_page)
    page = atlas_page.page
    assert page.locator("#atlas-plot .main-svg").count() >= 1
    assert page.locator("#atlas-plot .point").count() == len(DOCUMENTS)
    check_points_drawn(atlas_page)
    assert page.locator("#cluster-list li").count() == 3


def test_search_highlights_the_matching_documents(atlas_page):
    page = atlas_page.page
    before = page.locator("#atlas-plot").screenshot()
    page.fill("#search", "ZEBRA")
    page.wait_for_function("document.getElementById('search-count').textContent !== ''")
    matches = sum("zebra" in text.lower() for _, text in DOCUMENTS)
    assert page.text_content("#search-count") == f"{matches} of {len(DOCUMENTS)} documents match"
    bright = page.evaluate("""() => document.getElementById('atlas-plot').data.flatMap((trace) =>
        trace.customdata.filter((_, j) => trace.marker.opacity[j] === 1))""")
    assert sorted(bright) == [i for i, (_, text) in enumerate(DOCUMENTS) if "zebra" in text.lower()]
    page.wait_for_timeout(100)
    assert page.locator("#atlas-plot").screenshot() != before
    page.fill("#search", "")
    page.wait_for_function("document.getElementById('search-count').textContent === ''")


def test_hover_and_click_show_the_text_as_text(atlas_page):
    page = atlas_page.page
    data = page_data_of(atlas_page)
    i = data["points"]["where"].index("tagged")
    page.mouse.move(*plot_pixel(page, "atlas-plot", data["points"]["x"][i], data["points"]["y"][i]))
    hover = page.locator("#atlas-plot .hovertext")
    hover.wait_for(timeout=5_000)
    assert "<b>bold</b> & <script>zebra</script>" in hover.text_content()
    page.mouse.click(*plot_pixel(page, "atlas-plot", data["points"]["x"][i], data["points"]["y"][i]))
    page.wait_for_function("document.querySelector('#document .doc-text') !== null")
    assert page.text_content("#document .doc-text") == DOCUMENTS[-1][1]
    assert page.locator("#document b").count() == 1  # the name only: the text made no markup
    assert html.escape(DOCUMENTS[-1][1]) not in page.text_content("#document")


def test_many_points_are_drawn_with_webgl(browser, tiny, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(atlas, "WEBGL_ABOVE", 10)  # the threshold, not thousands of documents
    with force_backend("reference"):
        summary = write_atlas(tiny, tokenizer, DOCUMENTS, tmp_path / "gl.html", clusters=3, projection="pca",
                              progress=False)
    seen = visit(browser, summary.path)
    try:
        check_clean(seen)
        assert seen.page.evaluate("document.getElementById('atlas-plot').data[0].type") == "scattergl"
        check_points_drawn(seen)
        seen.page.fill("#search", "apple")
        seen.page.wait_for_function("document.getElementById('search-count').textContent !== ''")
        matches = sum("apple" in text for _, text in DOCUMENTS)
        assert seen.page.text_content("#search-count") == f"{matches} of {len(DOCUMENTS)} documents match"
        seen.page.wait_for_timeout(100)
        points = page_data_of(seen)["points"]
        hit = {c for c, text in zip(points["cluster"], points["text"]) if "apple" in text}
        check_points_drawn(seen, opacity=1.0, clusters=hit)  # the matches, drawn opaque
        check_clean(seen)
    finally:
        seen.close()
