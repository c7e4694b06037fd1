"""The evaluation report: plots (IoU distribution, paired IoU, worst and best cases per model) as PNG files and one
self-contained ``report.html`` that embeds them beside the summary table and the paired comparisons."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from .arrays import mask_to_binary
from .data import mask_column
from .fileio import atomic_file
from .visualization import overlay

__all__ = ["write_report"]


def _save(fig, path: Path, title: str, figures: list[tuple[str, str]]) -> None:
    """Write ``fig`` as ``path`` and keep it, base64-encoded, for the HTML page."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=80)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    figures.append((title, base64.b64encode(buf.getvalue()).decode()))
    plt.close(fig)


def _distribution(rows: dict[str, list[dict]], out: Path, figures: list) -> None:
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.boxplot([[r["iou"] for r in rows[n]] for n in names], tick_labels=names, showmeans=True)
    for j, n in enumerate(names, 1):
        ax.scatter(
            np.full(len(rows[n]), j) + np.random.default_rng(j).uniform(-0.12, 0.12, len(rows[n])),
            [r["iou"] for r in rows[n]],
            s=8,
            alpha=0.5,
        )
    ax.set_ylabel("IoU per image"), ax.set_ylim(-0.02, 1.02), ax.set_title("IoU distribution")
    _save(fig, out / "iou_distribution.png", "IoU distribution", figures)


def _paired(rows: dict[str, list[dict]], out: Path, figures: list) -> None:
    import matplotlib.pyplot as plt

    a, b = list(rows)[:2]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter([r["iou"] for r in rows[a]], [r["iou"] for r in rows[b]], s=12)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel(f"{a} IoU"), ax.set_ylabel(f"{b} IoU"), ax.set_title("paired IoU per image")
    _save(fig, out / "paired_iou.png", "Paired IoU", figures)


def _cases(name: str, rows: list[dict], ds: datasets.Dataset, out: Path, figures: list, n_examples: int) -> None:
    import matplotlib.pyplot as plt

    order = np.argsort([r["iou"] for r in rows])
    for label, idx in (("worst", order[:n_examples]), ("best", order[::-1][:n_examples])):
        if len(idx) == 0:
            continue
        fig, axes = plt.subplots(1, len(idx), figsize=(3 * len(idx), 3), squeeze=False)
        for ax, i in zip(axes[0], idx):
            row = rows[int(i)]
            item = ds[int(row["index"])]
            column = mask_column(row["label"]) if mask_column(row["label"]) in item else "mask"
            ax.imshow(overlay(np.asarray(item["image"]), row["_pred"], mask_to_binary(np.asarray(item[column]))))
            ax.set_title(f"{row['file']} ({row['label']})\nIoU {row['iou']:.3f}", fontsize=7)
            ax.axis("off")
        fig.suptitle(f"{name}: {label} cases (red: prediction, green: ground truth)", fontsize=9)
        _save(fig, out / f"{name}_{label}.png", f"{name}: {label} cases", figures)


def _html(summary: dict[str, Any], n_images: int, figures: list[tuple[str, str]]) -> str:
    def fmt(s: dict) -> str:
        return f"{s['mean']:.4f} (median {s['median']:.4f}, 95% CI {s['ci95'][0]:.4f}–{s['ci95'][1]:.4f})"

    parts = [
        f"<h1>Segmentation report</h1><p>{n_images} images. IoU/Dice per image at the original resolution; "
        "both masks empty counts as 1.0.</p><table border=1 cellpadding=4><tr><th>model</th><th>IoU</th>"
        "<th>Dice</th><th>precision</th><th>recall</th><th>micro IoU</th></tr>"
    ]
    for n, model in summary["models"].items():
        for label, s in model["labels"].items():
            name = n if len(model["labels"]) == 1 else f"{n}: {label}"
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td>{fmt(s['iou'])}</td><td>{fmt(s['dice'])}</td>"
                f"<td>{s['precision']['mean']:.4f}</td><td>{s['recall']['mean']:.4f}</td>"
                f"<td>{s['micro_iou']:.4f}</td></tr>"
            )
    parts.append("</table>")
    for pair, comparison in summary.get("comparisons", {}).items():
        for label, comp in comparison["labels"].items():
            c = comp["iou"]
            title = pair if len(comparison["labels"]) == 1 else f"{pair}: {label}"
            parts.append(
                f"<h2>{html.escape(title)}</h2><p>Mean IoU difference {c['mean_difference']:+.4f} (95% CI "
                f"{c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f}), Wilcoxon signed-rank p = {c['wilcoxon_p']:.3g}; "
                f"wins {c['wins_a']} / {c['wins_b']}, ties {c['ties']} of {c['n']} images. "
                f"Dice: difference {comp['dice']['mean_difference']:+.4f}, p = {comp['dice']['wilcoxon_p']:.3g}.</p>"
            )
    for title, b64 in figures:
        parts.append(f"<h3>{html.escape(title)}</h3><img src='data:image/png;base64,{b64}'/>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>trus-hf report</title></head><body "
        "style='font-family:sans-serif;max-width:1100px;margin:auto'>" + "".join(parts) + "</body></html>"
    )


def write_report(
    out: Path, rows: dict[str, list[dict[str, Any]]], summary: dict[str, Any], ds: datasets.Dataset, n_examples: int = 4
) -> Path:
    """Plots into ``out`` and ``out/report.html``. ``rows`` are the per-image rows of each model (with ``_pred``,
    the predicted mask), ``summary`` what `trus_hf.evaluation.evaluate_models` computed from them."""
    import matplotlib

    matplotlib.use("Agg")
    figures: list[tuple[str, str]] = []
    _distribution(rows, out, figures)
    if len(rows) >= 2:
        _paired(rows, out, figures)
    for name, model_rows in rows.items():
        _cases(name, model_rows, ds, out, figures, n_examples)
    with atomic_file(out / "report.html") as tmp:
        tmp.write_text(_html(summary, len(ds), figures))
    return out / "report.html"
