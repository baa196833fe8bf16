"""Markdown tables (for benches/RESULTS.md) from the JSON that bench_tokenizer.py writes.

    python benches/tokenizer_results_md.py bench-data/bench_tokenizer_peers.json > tables.md
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tokenizer import IMPLS, rank  # noqa: E402


def med(cell: dict, phase: str, clock: str) -> float:
    return statistics.median(cell[phase][clock])


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def label(impl: str | None) -> str:
    return impl or "-"


def fmt(cell: dict | None, phase: str, clock: str) -> str:
    if cell is None:
        return "-"
    if "skipped" in cell:
        return "skipped"
    text = f"{med(cell, phase, clock):.1f}"
    return text if cell["same"] else f"{text} (ids differ)"


def headline(results: list[dict]) -> list[str]:
    out = ["| encoding | input | fastllm cold | fastest exact peer, cold | **fastllm/best cold** "
           "| fastllm hot | fastest exact peer, hot | fastllm/best hot | fastllm x tiktoken cold |",
           "| --- | --- | ---: | --- | ---: | ---: | --- | ---: | ---: |"]
    for res in results:
        if res["mode"] != "single":
            continue
        clock = res["clock"]
        cold_ratios, hot_ratios = [], []
        for row in res["rows"]:
            c, h = rank(row["cells"], "cold", clock), rank(row["cells"], "hot", clock)
            cells = row["cells"]
            tt = statistics.median(f / t for f, t in zip(cells["fastllm"]["cold"][clock], cells["tiktoken"]["cold"][clock]))
            cold_ratios.append(c["ratio"])
            hot_ratios.append(h["ratio"])
            out.append(f"| {res['encoding']} | {row['corpus']} | {c['fastllm_mb_s']:.1f} | {label(c['peer'])} "
                       f"{c['peer_mb_s']:.1f} | **{c['ratio']:.2f}** | {h['fastllm_mb_s']:.1f} | {label(h['peer'])} "
                       f"{h['peer_mb_s']:.1f} | {h['ratio']:.2f} | {tt:.2f} |")
        out.append(f"| {res['encoding']} | **geometric mean** | | | **{geomean(cold_ratios):.2f}** | | | "
                   f"{geomean(hot_ratios):.2f} | |")
    return out


def per_library(results: list[dict], table: str, phase: str) -> list[str]:
    key = "rows" if table == "list" else "numpy_rows"
    measured = [res for res in results if res["mode"] == "single" and res[key]]
    # One column per library measured in any encoding (bpe-openai has no gpt2): "-" where absent.
    seen = {impl for res in measured for row in res[key] for impl in row["cells"]}
    impls = [i for i in IMPLS if i in seen]
    out = []
    if measured:
        out += ["| encoding | input | " + " | ".join(IMPLS[i][0] for i in impls) + " |",
                "| --- | --- | " + " | ".join("---:" for _ in impls) + " |"]
    for res in measured:
        rows = res[key]
        for row in rows:
            out.append(f"| {res['encoding']} | {row['corpus']} | "
                       + " | ".join(fmt(row["cells"].get(i), phase, res["clock"]) for i in impls) + " |")
    return out


def numpy_vs_list(results: list[dict]) -> list[str]:
    """fastllm's numpy output over its list output on the same cold slices (bench_tokenizer's
    `numpy_vs_list`): one row per encoding, one column per input, and the geometric mean."""
    measured = [res for res in results if res["mode"] == "single" and res.get("numpy_vs_list")]
    if not measured:
        return []
    corpora = [row["corpus"] for row in measured[0]["numpy_vs_list"]]
    out = ["| encoding | " + " | ".join(corpora) + " | geometric mean |",
           "| --- | " + " | ".join("---:" for _ in corpora) + " | ---: |"]
    for res in measured:
        medians = {row["corpus"]: row["median"] for row in res["numpy_vs_list"]}
        out.append(f"| {res['encoding']} | " + " | ".join(f"{medians[c]:.2f}" if c in medians else "-" for c in corpora)
                   + f" | **{geomean(medians.values()):.2f}** |")
    return out


def batch(results: list[dict]) -> list[str]:
    out = ["| encoding | input | output | phase | fastllm MB/s (CPUs) | fastest exact peer MB/s (CPUs) "
           "| fastllm/best, wall | fastllm/best, MB per CPU-second | tiktoken | HF |",
           "| --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for res in results:
        if res["mode"] != "batch":
            continue
        for output, row in [("lists", r) for r in res["rows"]] + [("numpy", r) for r in res.get("numpy_rows", [])]:
            for phase in ("cold", "hot"):
                cells = row["cells"]
                r = rank(cells, phase, "wall")
                rc = rank(cells, phase, "cpu")
                f = cells["fastllm"]

                def util(c):
                    return statistics.median(c[phase]["util"])
                extra = " | ".join(f"{med(cells[i], phase, 'wall'):.1f}" if i in cells else "-" for i in ("tiktoken", "hf"))
                out.append(f"| {res['encoding']} | {row['input']} ({row['docs_per_batch']:.0f} texts) | {output} | {phase} | "
                           f"{med(f, phase, 'wall'):.1f} ({util(f):.2f}) | {label(r['peer'])} {r['peer_mb_s']:.1f} "
                           f"({util(cells[r['peer']]):.2f}) | {r['ratio']:.2f} | {rc['ratio']:.2f} ({label(rc['peer'])}) "
                           f"| {extra} |")
    return out


def worst(results: list[dict]) -> list[str]:
    measured = [res for res in results if res["mode"] == "single" and res["worst"]]
    # One column per library measured in any encoding (bpe-openai has no gpt2): "-" where absent.
    seen = {impl for res in measured for row in res["worst"] for impl in row["cells"]}
    impls = [i for i in IMPLS if i in seen]
    out = []
    if measured:
        out += ["| encoding | input | " + " | ".join(IMPLS[i][0] for i in impls) + " | fastllm/best |",
                "| --- | --- | " + " | ".join("---:" for _ in impls) + " | ---: |"]
    for res in measured:
        for row in res["worst"]:
            r = row["rank"]["worst"]
            out.append(f"| {res['encoding']} | `{row['input']}` | "
                       + " | ".join(fmt(row["cells"].get(i), "worst", res["clock"]) for i in impls)
                       + f" | {r['ratio']:.2f} ({label(r['peer'])}) |")
    return out


def exactness(results: list[dict]) -> list[str]:
    inexact: dict[str, list[str]] = {}
    measured: set[str] = set()
    for res in results:
        rows = [(row.get("corpus") or row.get("input"), row["cells"]) for row in res.get("rows", [])]
        rows += [(f"{row.get('corpus') or row.get('input')} numpy", row["cells"]) for row in res.get("numpy_rows", [])]
        rows += [(f"worst {row['input']}", row["cells"]) for row in res.get("worst", [])]
        for where, cells in rows:
            for impl, cell in cells.items():
                measured.add(impl)
                if cell.get("same") is False:
                    inexact.setdefault(impl, []).append(f"{res['encoding']} {res['mode']} {where}")
    return [f"- {impl}: " + ("ids identical to tiktoken's everywhere" if impl not in inexact
                             else "ids differ in " + "; ".join(inexact[impl])) for impl in sorted(measured)]


def main() -> int:
    data = json.loads(Path(sys.argv[1]).read_text())
    results = data["results"]
    print(f"<!-- {data['date_utc']} UTC, {data['machine'].get('cpu', 'CPU not recorded')}, argv {data['argv']}, load "
          f"{data['machine']['load_start']} -> "
          f"{data['machine']['load_end']}, wall {data['wall_s']:.0f} s -->")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()))
    for title, lines in (("headline", headline(results)), ("list output, cold", per_library(results, "list", "cold")),
                         ("list output, hot", per_library(results, "list", "hot")),
                         ("numpy output, cold", per_library(results, "numpy", "cold")),
                         ("numpy output, hot", per_library(results, "numpy", "hot")),
                         ("numpy over list, same text", numpy_vs_list(results)),
                         ("batches", batch(results)), ("worst", worst(results)), ("exactness", exactness(results))):
        print(f"\n### {title}\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
