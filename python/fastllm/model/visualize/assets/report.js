// The report of one prompt through a model (data from fastllm.model.visualize.report).
"use strict";

(() => {
  const { el, escapeHtml, count, shape, plotConfig } = fastllm;
  const data = fastllm.pageData();
  const arch = data.architecture;
  const ids = data.tokens;
  const seq = ids.length;
  const label = (id) => data.labels[String(id)];
  const tokenLabels = ids.map(label);
  const axisTicks = { tickvals: ids.map((_, i) => i), ticktext: tokenLabels, tickfont: { size: 10 } };

  // -- attention: packed float32 rows, each query up to the diagonal --------------------------------
  const attention = (() => {
    const bytes = Uint8Array.from(atob(data.attention.packed), (c) => c.charCodeAt(0));
    const view = new DataView(bytes.buffer);
    const values = new Float32Array(bytes.length / 4);
    for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(4 * i, true);
    const perHead = (seq * (seq + 1)) / 2;
    // The (seq x seq) matrix of a head; null above the diagonal (keys after the query).
    return (layer, head) => {
      const base = (layer * data.attention.heads + head) * perHead;
      const rows = [];
      for (let q = 0; q < seq; q++) {
        const start = base + (q * (q + 1)) / 2;
        const row = Array.from(values.subarray(start, start + q + 1));
        for (let k = q + 1; k < seq; k++) row.push(null);
        rows.push(row);
      }
      return rows;
    };
  })();

  // -- header ----------------------------------------------------------------------------------------
  document.getElementById("summary").textContent =
    (data.model ? data.model + ": " : "") +
    `GPT with ${arch.n_layer} layers, ${arch.n_head} heads of width ${arch.head_dim}, ` +
    `embedding width ${arch.n_embd}, vocabulary ${count(arch.vocab_size)}, context ${count(arch.block_size)}; ` +
    `${count(arch.total)} parameters (${arch.dtype}). The prompt is ${seq} token${seq === 1 ? "" : "s"}.`;
  document.getElementById("prompt").textContent = data.prompt;

  // -- architecture ---------------------------------------------------------------------------------
  function paramText(part) {
    return part.params.map((p) => {
      const tied = p.tied_to ? ` = ${p.tied_to} (tied, no new parameters)` : "";
      return `${p.name} ${shape(p.shape)}${tied}`;
    }).join(", ");
  }

  function partRow(part) {
    return el("div", { className: `part part-${part.kind}` },
      el("span", { className: "part-title", textContent: part.title }),
      el("code", { className: "part-module", textContent: part.module }),
      el("span", { className: "part-params", textContent: paramText(part) }),
      el("span", { className: "part-count", textContent: count(part.count) }),
      el("span", { className: "part-output", textContent: part.output.length ? "→ " + shape(part.output) : "" }));
  }

  function archSection() {
    const root = document.getElementById("architecture");
    root.append(el("div", { className: "stage" },
      el("span", { className: "part-title", textContent: "input tokens" }),
      el("span", { className: "part-output", textContent: "→ " + shape([1, seq]) })));
    root.append(el("div", { className: "stage group" }, arch.embeddings.map(partRow),
      el("div", { className: "note", textContent: "token + position embeddings: the residual stream" })));
    arch.blocks.forEach((block) => {
      const attn = block.parts.filter((p) => p.kind === "attention");
      const heads = el("div", { className: "part part-attention heads" },
        el("span", { className: "part-title", textContent: `${arch.n_head} heads` }),
        el("span", { className: "part-params",
          textContent: `q, k, v ${shape([1, arch.n_head, seq, arch.head_dim])} each; ` +
            `softmax(q kᵀ / √${arch.head_dim}) ${shape([1, arch.n_head, seq, seq])}` }));
      const parts = [partRow(block.parts[0]), partRow(attn[0]), heads, partRow(attn[1]),
        el("div", { className: "residual", textContent: "+ residual" }),
        partRow(block.parts[3]), partRow(block.parts[4]), partRow(block.parts[5]),
        el("div", { className: "residual", textContent: "+ residual" })];
      const show = el("button", {
        className: "show-attention", type: "button", textContent: "show attention",
        onclick: (event) => { event.preventDefault(); select(block.index, current.head); scrollToAttention(); },
      });
      const details = el("details", { className: "stage block", dataset: { layer: String(block.index) } },
        el("summary", {},
          el("span", { className: "part-title", textContent: `block ${block.index}` }),
          el("code", { className: "part-module", textContent: block.module }),
          el("span", { className: "part-count", textContent: count(block.count) }),
          el("span", { className: "part-output", textContent: "→ " + shape(block.output) }),
          show),
        parts);
      if (block.index === 0) details.open = true;
      root.append(details);
    });
    root.append(el("div", { className: "stage group" }, arch.head.map(partRow)));
    root.append(el("div", { className: "stage total" },
      el("span", { className: "part-title", textContent: "total" }),
      el("span", { className: "part-count", textContent: count(arch.total) + " parameters" })));
  }

  // -- tokens ---------------------------------------------------------------------------------------
  function tokenSection() {
    const strip = document.getElementById("tokens");
    data.pieces.forEach(([text, start, end], i) => {
      const pieceIds = ids.slice(start, end);
      strip.append(el("span", {
        className: "piece", textContent: text,
        title: `token${pieceIds.length > 1 ? "s" : ""} ${start}${end - start > 1 ? "–" + (end - 1) : ""}: ` +
          `id${pieceIds.length > 1 ? "s" : ""} ${pieceIds.join(" ")}`,
        style: `background: ${data.piece_colours[i % data.piece_colours.length]}`,
      }));
    });
    strip.after(el("p", { className: "note", textContent: `${seq} tokens in ${data.pieces.length} pieces` }));
  }

  // -- attention ------------------------------------------------------------------------------------
  const current = { layer: 0, head: 0 };
  const attentionPlot = document.getElementById("attention-plot");
  const cellLabels = tokenLabels.map((q) => tokenLabels.map((k) => [escapeHtml(q), escapeHtml(k)]));

  function attentionTrace(layer, head) {
    return {
      type: "heatmap", z: attention(layer, head), colorscale: "Viridis", zmin: 0, zmax: 1,
      hoverongaps: false, customdata: cellLabels, xgap: 0, ygap: 0,
      colorbar: { title: { text: "weight" }, thickness: 12 },
      hovertemplate: "query %{y}: %{customdata[0]}<br>key %{x}: %{customdata[1]}<br>" +
        "weight %{z:.4f}<extra></extra>",
    };
  }

  function attentionLayout() {
    const side = Math.min(760, Math.max(320, 120 + 16 * seq));
    return {
      width: side + 90, height: side, margin: { l: 90, r: 20, t: 10, b: 90 },
      xaxis: { ...axisTicks, title: { text: "key" }, tickangle: -60, constrain: "domain", zeroline: false },
      yaxis: { ...axisTicks, title: { text: "query" }, autorange: "reversed", scaleanchor: "x", zeroline: false },
    };
  }

  function pickerSection() {
    const picker = document.getElementById("head-picker");
    const grid = el("table", { className: "picker" });
    grid.append(el("tr", {}, el("th", { textContent: "layer \\ head" }),
      Array.from({ length: arch.n_head }, (_, h) => el("th", { textContent: String(h) }))));
    for (let l = 0; l < arch.n_layer; l++) {
      grid.append(el("tr", {}, el("th", { textContent: String(l) }),
        Array.from({ length: arch.n_head }, (_, h) => el("td", {},
          el("button", {
            className: "head", type: "button", textContent: `${l}.${h}`,
            title: `layer ${l}, head ${h}`, dataset: { layer: String(l), head: String(h) },
            onclick: () => select(l, h),
          })))));
    }
    picker.append(grid);
  }

  function select(layer, head) {
    current.layer = layer;
    current.head = head;
    document.querySelectorAll("#head-picker button.head").forEach((b) => {
      b.classList.toggle("selected", Number(b.dataset.layer) === layer && Number(b.dataset.head) === head);
    });
    document.getElementById("attention-title").textContent = `layer ${layer}, head ${head}`;
    return Plotly.react(attentionPlot, [attentionTrace(layer, head)], attentionLayout(), plotConfig);
  }

  function scrollToAttention() {
    document.getElementById("attention-section").scrollIntoView({ behavior: "smooth" });
  }

  // -- predictions ----------------------------------------------------------------------------------
  function predictionSection() {
    const p = data.predictions;
    const positions = ids.map((_, i) => i);
    const top1 = p.probs.map((row) => row[0]);
    const confidence = [
      { type: "bar", name: "top choice", x: positions, y: top1, marker: { color: "#9ab8d8" },
        customdata: p.ids.map((row) => escapeHtml(label(row[0]))),
        hovertemplate: "after %{x}: top choice %{customdata} %{y:.4f}<extra></extra>" },
      { type: "scatter", mode: "markers+lines", name: "actual next token", x: positions.slice(0, -1),
        y: p.next_probs, marker: { color: "#d0582a", size: 7 }, line: { width: 1 },
        customdata: ids.slice(1).map((id, i) => [escapeHtml(label(id)), p.next_ranks[i]]),
        hovertemplate: "after %{x}: %{customdata[0]} %{y:.4f} (rank %{customdata[1]})<extra></extra>" },
    ];
    const drawn = Plotly.newPlot("confidence-plot", confidence, {
      height: 300, margin: { l: 60, r: 20, t: 10, b: 90 }, barmode: "overlay",
      xaxis: { ...axisTicks, tickangle: -60 }, yaxis: { title: { text: "probability" }, range: [0, 1] },
      legend: { orientation: "h", y: 1.12 },
    }, plotConfig);

    const table = document.getElementById("predictions");
    const k = p.ids[0].length;
    table.append(el("thead", {}, el("tr", {},
      el("th", { textContent: "#" }), el("th", { textContent: "token" }),
      el("th", { textContent: "actual next" }), el("th", { textContent: "p" }), el("th", { textContent: "rank" }),
      el("th", { textContent: "entropy" }),
      Array.from({ length: k }, (_, j) => el("th", { textContent: `top ${j + 1}` })))));
    const body = el("tbody");
    ids.forEach((id, i) => {
      const hasNext = i + 1 < seq;
      body.append(el("tr", { dataset: { position: String(i) } },
        el("td", { textContent: String(i) }),
        el("td", {}, el("span", { className: "tok", textContent: label(id) })),
        el("td", {}, hasNext ? el("span", { className: "tok", textContent: label(ids[i + 1]) }) : "—"),
        el("td", { className: "num", textContent: hasNext ? p.next_probs[i].toFixed(4) : "" }),
        el("td", { className: "num", textContent: hasNext ? String(p.next_ranks[i]) : "" }),
        el("td", { className: "num", textContent: p.entropy[i].toFixed(3) }),
        p.ids[i].map((tok, j) => el("td", {
          className: "pred" + (hasNext && tok === ids[i + 1] ? " actual" : ""),
          dataset: { id: String(tok) },
          style: `background: linear-gradient(90deg, #cfe0f3 ${100 * p.probs[i][j]}%, transparent 0)`,
        }, el("span", { className: "tok", textContent: label(tok) }), " ",
        el("span", { className: "prob", textContent: p.probs[i][j].toFixed(4) })))));
    });
    table.append(body);
    return drawn;
  }

  // -- logit lens -----------------------------------------------------------------------------------
  function lensSection() {
    const lens = data.lens;
    const rows = ["embeddings"].concat(arch.blocks.map((b) => `block ${b.index}`));
    rows[rows.length - 1] += " (output)";
    const hover = lens.ids.map((layerIds, l) => layerIds.map((top, i) =>
      top.map((id, j) => `${escapeHtml(label(id))} ${lens.probs[l][i][j].toFixed(4)}`).join("<br>") +
      (i + 1 < seq ? `<br>actual next: ${escapeHtml(label(ids[i + 1]))}` : "")));
    return Plotly.newPlot("lens-plot", [{
      type: "heatmap", z: lens.probs.map((layer) => layer.map((top) => top[0])),
      text: lens.ids.map((layer) => layer.map((top) => label(top[0]))), texttemplate: "%{text}",
      textfont: { size: 10 }, customdata: hover, colorscale: [[0, "#f4f8fd"], [1, "#0b3d91"]], zmin: 0, zmax: 1,
      x: ids.map((_, i) => i), y: rows.map((_, i) => i), xgap: 1, ygap: 1,
      colorbar: { title: { text: "p" }, thickness: 12 },
      hovertemplate: "%{customdata}<extra>position %{x}</extra>",
    }], {
      height: 110 + 28 * rows.length, width: Math.max(600, 160 + 48 * seq),
      margin: { l: 130, r: 20, t: 10, b: 90 },
      xaxis: { ...axisTicks, tickangle: -60, title: { text: "position (input token)" }, zeroline: false },
      yaxis: { tickvals: rows.map((_, i) => i), ticktext: rows, autorange: "reversed", zeroline: false },
    }, plotConfig);
  }

  archSection();
  tokenSection();
  pickerSection();
  Promise.all([predictionSection(), lensSection(), select(0, 0)]).then(() => {
    document.body.dataset.ready = "1";
  });
  // For scripts driving the page (the tests): what is drawn and how to change it.
  window.fastllmReport = { select, current, attention };
})();
