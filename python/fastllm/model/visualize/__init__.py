"""Looking inside a model: pictures and pages.

A package rather than one module because it holds four things with different dependencies:
``attention_png`` (one layer's attention as a PNG, matplotlib), ``internals`` (what the model
computes for a prompt: attention, residual streams, predictions, logit lens, architecture;
torch only), ``report`` and ``atlas`` (the interactive HTML pages of a prompt and of a dataset)
with ``page`` (self-contained HTML, Plotly inlined) and ``assets/`` (their style and scripts).
"""

from .attention_png import attention_maps, plot_attention, save_attention_map, token_labels
from .atlas import write_atlas
from .report import report_data, write_report

__all__ = [
    "attention_maps",
    "plot_attention",
    "report_data",
    "save_attention_map",
    "token_labels",
    "write_atlas",
    "write_report",
]
