// Helpers shared by fastllm's HTML pages (the report and the dataset atlas).
"use strict";

const fastllm = (() => {
  // The page's data: JSON inlined by fastllm.model.visualize.page.
  function pageData() {
    return JSON.parse(document.getElementById("fastllm-data").textContent);
  }

  // An element with attributes (className, textContent, dataset.*, on*) and children.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // Plotly draws hover text as a small subset of HTML: user text must not become markup.
  function escapeHtml(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  const count = (n) => n.toLocaleString("en-US");
  const shape = (dims) => "(" + dims.join(", ") + ")";
  // No button that would send a chart anywhere (plotly.js 4 adds "Share chart..." by default).
  const plotConfig = {
    displaylogo: false, responsive: true, showSendToCloud: false, showEditInChartStudio: false,
    plotlyServerURL: "", modeBarButtonsToRemove: ["sendChartToCloud", "sendDataToCloud"],
  };

  return { pageData, el, escapeHtml, count, shape, plotConfig };
})();
