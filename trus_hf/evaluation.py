"""Evaluation and model comparison: per-image metrics through the prediction pipeline, summaries with bootstrap
intervals, a paired comparison (Wilcoxon signed-rank); `evaluate_models` writes them with the plots and the HTML
report of `trus_hf.report`.

Example (in a script):
    report = evaluate_models({"fpn": pipe_fpn, "segformer": pipe_seg}, dataset, "reports/cmp")
    # reports/cmp/report.html, per_image.csv, summary.json, *.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
from tqdm.auto import tqdm

from .arrays import mask_to_binary
from .fileio import write_csv, write_json
from .metrics import aggregate, binary_metrics
from .pipeline import SegmentationPipeline
from .report import write_report

__all__ = ["bootstrap_ci", "compare", "evaluate_dataset", "evaluate_models"]

_METRICS = ("iou", "dice", "precision", "recall")


def evaluate_dataset(
    pipeline: SegmentationPipeline, ds: datasets.Dataset, keep_predictions: bool = False, desc: str = "evaluating"
) -> list[dict[str, Any]]:
    """Per-image metrics (IoU, Dice, precision, recall, HD95, areas) at the ORIGINAL resolution of each image."""
    rows = []
    for i in tqdm(range(len(ds)), desc=desc, leave=False):
        item = ds[i]
        gt = mask_to_binary(np.asarray(item["mask"]), name=f"mask of {item.get('file', i)}")
        res = pipeline(np.asarray(item["image"]))  # metrics computed once below, with HD95
        m = binary_metrics(res.mask, gt, with_hd95=True)
        row = {
            "index": i,
            "file": item.get("file", str(i)),
            "group": item.get("group", ""),
            **{k: m[k] for k in (*_METRICS, "hd95", "pred_area", "target_area", "tp", "fp", "fn", "tn")},
            "inference_ms": res.timings_ms.get("inference", float("nan")),
        }
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
        out[k] = {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std()), "ci95": [lo, hi]}
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
    return {
        "metric": metric,
        "mean_difference": float(d.mean()),
        "ci95": [lo, hi],
        "wilcoxon_p": p,
        "wins_a": int((d > 1e-9).sum()),
        "wins_b": int((d < -1e-9).sum()),
        "ties": int((np.abs(d) <= 1e-9).sum()),
        "n": int(d.size),
    }


def evaluate_models(
    pipelines: dict[str, SegmentationPipeline], ds: datasets.Dataset, out_dir: str | Path, n_examples: int = 4
) -> dict[str, Any]:
    """Evaluate every model on ``ds`` and write per_image.csv, summary.json, plots and report.html into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(pipelines)
    rows = {n: evaluate_dataset(p, ds, keep_predictions=True, desc=f"evaluating {n}") for n, p in pipelines.items()}
    summary: dict[str, Any] = {"dataset_size": len(ds), "models": {n: _summary(r) for n, r in rows.items()}}
    if len(names) >= 2:
        summary["comparisons"] = {
            f"{a} vs {b}": {m: compare(rows[a], rows[b], m) for m in ("iou", "dice")}
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        }
    fields = ["model", "index", "file", "group", *_METRICS, "hd95", "pred_area", "target_area", "inference_ms"]
    write_csv(out / "per_image.csv", [{"model": n, **r} for n in names for r in rows[n]], fields)
    write_json(out / "summary.json", summary)
    write_report(out, rows, summary, ds, n_examples)
    for n in names:
        for r in rows[n]:
            r.pop("_pred", None)
    summary["report"] = str(out / "report.html")
    return summary
