"""Evaluation and model comparison: per-image metrics through the prediction pipeline, summaries with bootstrap
intervals, a paired comparison (Wilcoxon signed-rank), plots, and one self-contained HTML report.

Example (in a script):
    report = evaluate_models({"fpn": pipe_fpn, "segformer": pipe_seg}, dataset, "reports/cmp")
    # reports/cmp/report.html, per_image.csv, summary.json, *.png
"""

from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from tqdm.auto import tqdm

from .fileio import atomic_file
from .image_processing import TrusImageProcessor
from .metrics import aggregate, binary_metrics
from .pipeline import SegmentationPipeline
from .visualization import overlay

__all__ = ["bootstrap_ci", "compare", "evaluate_dataset", "evaluate_models"]

_METRICS = ("iou", "dice", "precision", "recall")


def evaluate_dataset(pipeline: SegmentationPipeline, ds: datasets.Dataset, keep_predictions: bool = False,
                     desc: str = "evaluating") -> list[dict[str, Any]]:
    """Per-image metrics (IoU, Dice, precision, recall, HD95, areas) at the ORIGINAL resolution of each image."""
    rows = []
    for i in tqdm(range(len(ds)), desc=desc, leave=False):
        item = ds[i]
        gt = TrusImageProcessor.mask_to_binary(np.asarray(item["mask"]), name=f"mask of {item.get('file', i)}")
        res = pipeline(np.asarray(item["image"]))  # metrics computed once below, with HD95
        m = binary_metrics(res.mask, gt, with_hd95=True)
        row = {"index": i, "file": item.get("file", str(i)), "group": item.get("group", ""),
               **{k: m[k] for k in (*_METRICS, "hd95", "pred_area", "target_area", "tp", "fp", "fn", "tn")},
               "inference_ms": res.timings_ms.get("inference", float("nan"))}
        if keep_predictions:
            row["_pred"] = res.mask
        rows.append(row)
    return rows


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = aggregate(rows)
    for k in _METRICS:
        v = np.array([r[k] for r in rows])
        lo, hi = bootstrap_ci(v)
        out[k] = {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std()),
                  "ci95": [lo, hi]}
    return out


def compare(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], metric: str = "iou") -> dict[str, Any]:
    """Paired comparison of two models on the same images: mean difference (a - b) with bootstrap CI, Wilcoxon
    signed-rank test, and wins per model."""
    from scipy.stats import wilcoxon

    a = np.array([r[metric] for r in rows_a])
    b = np.array([r[metric] for r in rows_b])
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same images: {a.size} vs {b.size}")
    d = a - b
    if np.allclose(d, 0):
        p = 1.0
    else:
        p = float(wilcoxon(a, b, zero_method="wilcox").pvalue)
    lo, hi = bootstrap_ci(d)
    return {"metric": metric, "mean_difference": float(d.mean()), "ci95": [lo, hi], "wilcoxon_p": p,
            "wins_a": int((d > 1e-9).sum()), "wins_b": int((d < -1e-9).sum()), "ties": int((np.abs(d) <= 1e-9).sum()),
            "n": int(d.size)}


def _png_b64(fig) -> str:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode()


def evaluate_models(pipelines: dict[str, SegmentationPipeline], ds: datasets.Dataset, out_dir: str | Path,
                    n_examples: int = 4) -> dict[str, Any]:
    """Evaluate every model on ``ds`` and write per_image.csv, summary.json, plots and report.html into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(pipelines)
    rows = {n: evaluate_dataset(p, ds, keep_predictions=True, desc=f"evaluating {n}") for n, p in pipelines.items()}
    summary: dict[str, Any] = {"dataset_size": len(ds), "models": {n: _summary(r) for n, r in rows.items()}}
    if len(names) >= 2:
        summary["comparisons"] = {f"{a} vs {b}": {m: compare(rows[a], rows[b], m) for m in ("iou", "dice")}
                                  for i, a in enumerate(names) for b in names[i + 1:]}
    with atomic_file(out / "per_image.csv") as tmp:
        with open(tmp, "w", newline="") as f:
            fields = ["model", "index", "file", "group", *_METRICS, "hd95", "pred_area", "target_area", "inference_ms"]
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for n in names:
                for r in rows[n]:
                    w.writerow({"model": n, **r})
    with atomic_file(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))

    figs: list[tuple[str, str]] = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.boxplot([[r["iou"] for r in rows[n]] for n in names], tick_labels=names, showmeans=True)
    for j, n in enumerate(names, 1):
        ax.scatter(np.full(len(rows[n]), j) + np.random.default_rng(j).uniform(-0.12, 0.12, len(rows[n])),
                   [r["iou"] for r in rows[n]], s=8, alpha=0.5)
    ax.set_ylabel("IoU per image"), ax.set_ylim(-0.02, 1.02), ax.set_title("IoU distribution")
    fig.tight_layout()
    fig.savefig(out / "iou_distribution.png", dpi=80)
    figs.append(("IoU distribution", _png_b64(fig)))
    plt.close(fig)
    if len(names) >= 2:
        a, b = names[:2]
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter([r["iou"] for r in rows[a]], [r["iou"] for r in rows[b]], s=12)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set_xlabel(f"{a} IoU"), ax.set_ylabel(f"{b} IoU"), ax.set_title("paired IoU per image")
        fig.tight_layout()
        fig.savefig(out / "paired_iou.png", dpi=80)
        figs.append(("Paired IoU", _png_b64(fig)))
        plt.close(fig)
    for n in names:
        order = np.argsort([r["iou"] for r in rows[n]])
        for label, idx in (("worst", order[:n_examples]), ("best", order[::-1][:n_examples])):
            k = len(idx)
            if k == 0:
                continue
            fig, axes = plt.subplots(1, k, figsize=(3 * k, 3), squeeze=False)
            for ax, i in zip(axes[0], idx):
                item = ds[int(i)]
                gt = TrusImageProcessor.mask_to_binary(np.asarray(item["mask"]))
                ax.imshow(overlay(np.asarray(item["image"]), rows[n][i]["_pred"], gt))
                ax.set_title(f"{rows[n][i]['file']}\nIoU {rows[n][i]['iou']:.3f}", fontsize=7)
                ax.axis("off")
            fig.suptitle(f"{n}: {label} cases (red: prediction, green: ground truth)", fontsize=9)
            fig.tight_layout()
            fig.savefig(out / f"{n}_{label}.png", dpi=80)
            figs.append((f"{n}: {label} cases", _png_b64(fig)))
            plt.close(fig)

    def fmt(s: dict) -> str:
        return f"{s['mean']:.4f} (median {s['median']:.4f}, 95% CI {s['ci95'][0]:.4f}–{s['ci95'][1]:.4f})"

    parts = [f"<h1>Segmentation report</h1><p>{len(ds)} images. IoU/Dice per image at the original resolution; "
             "both masks empty counts as 1.0.</p><table border=1 cellpadding=4><tr><th>model</th><th>IoU</th>"
             "<th>Dice</th><th>precision</th><th>recall</th><th>micro IoU</th></tr>"]
    for n in names:
        s = summary["models"][n]
        parts.append(f"<tr><td>{html.escape(n)}</td><td>{fmt(s['iou'])}</td><td>{fmt(s['dice'])}</td>"
                     f"<td>{s['precision']['mean']:.4f}</td><td>{s['recall']['mean']:.4f}</td>"
                     f"<td>{s['micro_iou']:.4f}</td></tr>")
    parts.append("</table>")
    for pair, comp in summary.get("comparisons", {}).items():
        c = comp["iou"]
        parts.append(f"<h2>{html.escape(pair)}</h2><p>Mean IoU difference {c['mean_difference']:+.4f} (95% CI "
                     f"{c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f}), Wilcoxon signed-rank p = {c['wilcoxon_p']:.3g}; "
                     f"wins {c['wins_a']} / {c['wins_b']}, ties {c['ties']} of {c['n']} images. "
                     f"Dice: difference {comp['dice']['mean_difference']:+.4f}, p = {comp['dice']['wilcoxon_p']:.3g}.</p>")
    for title, b64 in figs:
        parts.append(f"<h3>{html.escape(title)}</h3><img src='data:image/png;base64,{b64}'/>")
    with atomic_file(out / "report.html") as tmp:
        tmp.write_text("<!doctype html><html><head><meta charset='utf-8'><title>trus-hf report</title></head><body "
                       "style='font-family:sans-serif;max-width:1100px;margin:auto'>" + "".join(parts) + "</body></html>")
    for n in names:
        for r in rows[n]:
            r.pop("_pred", None)
    summary["report"] = str(out / "report.html")
    return summary
