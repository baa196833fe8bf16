"""The loss-curve PNG (matplotlib's object API rendered by Agg: no display, no global state)."""

from __future__ import annotations

from pathlib import Path


def save_loss_curve(log_records: list[dict], path: str | Path, baseline: float | None = None,
                    title: str = "training loss") -> Path:
    """Plots train loss (and validation loss, when logged) against the step, from ``log.jsonl`` records."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [(r["step"], r["loss"]) for r in log_records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in log_records if "val_loss" in r]
    if not train:
        raise ValueError("no training loss records to plot")
    fig = Figure(figsize=(7, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(*zip(*train), label="train loss", color="tab:blue", linewidth=1.2)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", color="tab:orange", markersize=4)
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="tab:gray", label=f"unigram baseline ({baseline:.2f})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
