// The map of a dataset (data from fastllm.model.visualize.atlas).
"use strict";

(() => {
  const { el, escapeHtml, count, plotConfig } = fastllm;
  const data = fastllm.pageData();
  const points = data.points;
  const n = points.x.length;
  const plot = document.getElementById("atlas-plot");
  const BASE_OPACITY = 0.75;
  const BASE_SIZE = n > 5000 ? 4 : 7;

  const projection = data.projection.method === "PCA"
    ? `PCA (the axes hold ${(100 * data.projection.explained[0]).toFixed(1)}% and ` +
      `${(100 * data.projection.explained[1]).toFixed(1)}% of the variance)`
    : data.projection.method;
  document.getElementById("summary").textContent =
    `${count(data.documents)} documents` + (data.skipped ? ` (${count(data.skipped)} empty ones left out)` : "") +
    (data.model ? `, embedded by ${data.model}` : "") +
    ` (mean of the last hidden states over at most ${count(data.max_tokens)} tokens), projected by ${projection}, ` +
    `in ${data.clusters.length} k-means cluster${data.clusters.length === 1 ? "" : "s"}. ` +
    `Hover shows and search looks in the first ${count(data.text_chars)} characters of each document.`;

  // Hover text: the document's start, escaped, cut into lines.
  function wrap(text, width) {
    const lines = [];
    for (const paragraph of text.split("\n")) {
      for (let i = 0; i < Math.max(paragraph.length, 1); i += width) lines.push(paragraph.slice(i, i + width));
      if (lines.length >= 8) break;
    }
    return lines.slice(0, 8).map(escapeHtml).join("<br>");
  }

  // Many points need WebGL to stay fast; without it (disabled, no GPU driver) SVG still works.
  const webgl = data.webgl && (() => {
    try {
      return !!document.createElement("canvas").getContext("webgl");
    } catch (error) {
      return false;
    }
  })();
  const colour = (c) => data.colours[c % data.colours.length];
  const members = data.clusters.map(() => []);
  points.cluster.forEach((c, i) => members[c].push(i));
  const lowered = points.text.map((t) => t.toLowerCase());

  const traces = data.clusters.map((cluster, c) => ({
    type: webgl ? "scattergl" : "scatter", mode: "markers", name: `${c}: ${cluster.name}`,
    x: members[c].map((i) => points.x[i]), y: members[c].map((i) => points.y[i]),
    customdata: members[c],
    text: members[c].map((i) => `<b>${escapeHtml(points.where[i])}</b> · cluster ${c}<br>${wrap(points.text[i], 80)}`),
    hovertemplate: "%{text}<extra></extra>",
    marker: { color: colour(c), size: BASE_SIZE, opacity: BASE_OPACITY, line: { width: 0 } },
  }));
  const layout = {
    margin: { l: 50, r: 10, t: 10, b: 40 }, dragmode: "zoom", hovermode: "closest",
    xaxis: { zeroline: false, title: { text: data.projection.method === "PCA" ? "PC 1" : "UMAP 1" } },
    yaxis: { zeroline: false, title: { text: data.projection.method === "PCA" ? "PC 2" : "UMAP 2" } },
    legend: { itemsizing: "constant" }, hoverlabel: { align: "left" },
  };

  const list = document.getElementById("cluster-list");
  data.clusters.forEach((cluster, c) => {
    list.append(el("li", {},
      el("span", { className: "swatch", style: `background: ${colour(c)}` }),
      `${cluster.name} (${count(cluster.size)})`));
  });

  function showDocument(i) {
    const panel = document.getElementById("document");
    panel.replaceChildren(
      el("p", {}, el("b", { textContent: points.where[i] }), ` · cluster ${points.cluster[i]}`),
      el("div", { className: "doc-text", textContent: points.text[i] }));
  }

  // Search: matching documents stay bright and grow, the others fade.
  const countLabel = document.getElementById("search-count");
  function search(query) {
    const q = query.trim().toLowerCase();
    if (!q) {
      countLabel.textContent = "";
      return Plotly.restyle(plot, { "marker.opacity": BASE_OPACITY, "marker.size": BASE_SIZE });
    }
    let found = 0;
    const opacity = [];
    const size = [];
    members.forEach((idx) => {
      const hit = idx.map((i) => lowered[i].includes(q));
      found += hit.filter(Boolean).length;
      opacity.push(hit.map((h) => (h ? 1 : 0.06)));
      size.push(hit.map((h) => (h ? BASE_SIZE + 4 : BASE_SIZE)));
    });
    countLabel.textContent = `${count(found)} of ${count(n)} documents match`;
    return Plotly.restyle(plot, { "marker.opacity": opacity, "marker.size": size });
  }
  let pending = null;
  document.getElementById("search").addEventListener("input", (event) => {
    clearTimeout(pending);
    pending = setTimeout(() => search(event.target.value), 120);
  });

  Plotly.newPlot(plot, traces, layout, { ...plotConfig, scrollZoom: true }).then(() => {
    plot.on("plotly_click", (event) => {
      if (event.points.length) showDocument(event.points[0].customdata);
    });
    document.body.dataset.ready = "1";
  });
  window.fastllmAtlas = { search };
})();
