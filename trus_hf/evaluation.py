"""Evaluation and model comparison: per-image metrics through the prediction pipeline, summaries with bootstrap
intervals, a paired comparison (Wilcoxon signed-rank); `evaluate_models` writes them with the plots and the HTML
report of `trus_hf.report`.

Example (in a script):
    report = evaluate_models({"fpn": pipe_fpn, "segformer": pipe_seg}, dataset, "reports/cmp")
    # reports/cmp/report.html, per_image.csv, summary.json, *.png
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import datasets
import numpy as np

from .arrays import mask_to_binary
from .data import mask_column
from .fileio import write_csv, write_json
from .metrics import aggregate, binary_metrics
from .pipeline import SegmentationPipeline
from .progress import progress
from .report import write_report

__all__ = [
    "bootstrap_ci",
    "compare",
    "evaluate_dataset",
    "evaluate_models",
    "GroupScores",
    "ground_truth_columns",
    "of_label",
    "postprocessing_scores",
    "summarize",
    "describe_input_size",
    "describe_postprocessing",
    "tune_input_size",
    "tune_postprocessing",
]

_METRICS = ("iou", "dice", "precision", "recall")


def ground_truth_columns(ds: datasets.Dataset, labels: list[str], primary: str) -> dict[str, str]:
    """Which dataset column scores which of the model's labels: ``mask_<label>`` columns by name, else a single
    ``mask`` column scores the primary label."""
    by_name = {lb: mask_column(lb) for lb in labels if mask_column(lb) in ds.column_names}
    if by_name:
        return by_name
    if "mask" in ds.column_names:
        return {primary: "mask"}
    raise ValueError(f"the dataset has no ground truth for the labels {labels} (columns {ds.column_names})")


def evaluate_dataset(
    pipeline: SegmentationPipeline, ds: datasets.Dataset, keep_predictions: bool = False, desc: str = "evaluating"
) -> list[dict[str, Any]]:
    """Per-image metrics (IoU, Dice, precision, recall, HD95, areas) at the ORIGINAL resolution of each image: one
    row per image and scored label (a label not annotated on an image is not scored there)."""
    columns = ground_truth_columns(ds, pipeline.labels, pipeline.primary_label)
    rows = []
    for i in progress(range(len(ds)), desc=desc, unit="image"):
        item = ds[i]
        res = pipeline(np.asarray(item["image"]))  # metrics computed once below, with HD95
        for label, column in columns.items():
            if item[column] is None:
                continue
            gt = mask_to_binary(np.asarray(item[column]), name=f"{label} mask of {item.get('file', i)}")
            m = binary_metrics(res.masks[label], gt, with_hd95=True)
            row = {
                "index": i,
                "file": item.get("file", str(i)),
                "group": item.get("group", ""),
                "label": label,
                **{k: m[k] for k in (*_METRICS, "hd95", "pred_area", "target_area", "tp", "fp", "fn", "tn")},
                "inference_ms": res.timings_ms.get("inference", float("nan")),
            }
            if keep_predictions:
                row["_pred"] = res.masks[label]
            rows.append(row)
    return rows


TUNE_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TUNE_FRACTIONS = (0.0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)


def _iou_after_dropping(mask: np.ndarray, gt: np.ndarray, min_pixels: list[float]) -> tuple[list[float], list[bool]]:
    """IoU of ``mask`` against ``gt`` after `drop_small_components` at each of ``min_pixels``, and whether any
    pixel of ``gt`` is still marked: the components are labelled and their overlaps with ``gt`` counted once,
    instead of once per size."""
    gt_area = int(np.count_nonzero(gt))
    if not mask.any():
        return [1.0 if gt_area == 0 else 0.0] * len(min_pixels), [False] * len(min_pixels)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    area = stats[1:, cv2.CC_STAT_AREA]
    overlap = np.bincount(labels[gt], minlength=n)[1:]
    ious, found = [], []
    for low in min_pixels:
        keep = area >= low  # as drop_small_components (every component has a pixel: low <= 1 keeps all)
        tp, pred = int(overlap[keep].sum()), int(area[keep].sum())
        union = pred + gt_area - tp
        ious.append(1.0 if union == 0 else tp / union)
        found.append(tp > 0)
    return ious, found


@dataclass
class GroupScores:
    """One group's scores over a (threshold x smallest kept component) grid: ``iou`` the mean IoU over its
    ``n_images``; ``found`` the share of its ``n_positive`` images with a non-empty mask where the setting still
    marks a pixel of it (NaN without such images)."""

    iou: np.ndarray
    found: np.ndarray
    n_images: int
    n_positive: int


def postprocessing_scores(
    pipeline: SegmentationPipeline,
    ds: datasets.Dataset,
    thresholds: tuple[float, ...] = TUNE_THRESHOLDS,
    fractions: tuple[float, ...] = TUNE_FRACTIONS,
    group_column: str = "source",
    desc: str = "scoring post-processing",
) -> dict[str, dict[str, GroupScores]]:
    """Per label and group (the values of ``group_column``; one group without it), the `GroupScores` of every
    (threshold, smallest kept component) pair, as ``len(thresholds) x len(fractions)`` arrays. One forward pass
    per image; what `tune_postprocessing` chooses from."""
    columns = ground_truth_columns(ds, pipeline.labels, pipeline.primary_label)
    groups = ds[group_column] if group_column in ds.column_names else [""] * len(ds)
    ious: dict[str, dict[str, list[np.ndarray]]] = {label: {} for label in columns}
    found: dict[str, dict[str, list[np.ndarray]]] = {label: {} for label in columns}
    for start in progress(range(0, len(ds), pipeline.batch_size), desc=desc, unit="batch"):
        items = ds.select(range(start, min(start + pipeline.batch_size, len(ds))))
        results = pipeline.predict([np.asarray(im) for im in items["image"]], threshold=0.5)
        for k, (item, res) in enumerate(zip(items, results)):
            group = str(groups[start + k])
            for label, column in columns.items():
                if item[column] is None:
                    continue
                gt = mask_to_binary(np.asarray(item[column]), name=f"{label} mask of {item.get('file', start + k)}")
                prob = res.label_probabilities[label]
                sizes = [f * prob.size for f in fractions]
                per_t = [_iou_after_dropping((prob > t).astype(np.uint8), gt > 0, sizes) for t in thresholds]
                ious[label].setdefault(group, []).append(np.array([iou for iou, _ in per_t]))
                if gt.any():
                    found[label].setdefault(group, []).append(np.array([hit for _, hit in per_t], float))
    out: dict[str, dict[str, GroupScores]] = {}
    for label in columns:
        for group, grids in ious[label].items():
            hits = found[label].get(group, [])
            out.setdefault(label, {})[group] = GroupScores(
                iou=np.mean(grids, axis=0),
                found=np.mean(hits, axis=0) if hits else np.full(grids[0].shape, np.nan),
                n_images=len(grids),
                n_positive=len(hits),
            )
    return out


def tune_postprocessing(
    pipeline: SegmentationPipeline,
    ds: datasets.Dataset,
    thresholds: tuple[float, ...] = TUNE_THRESHOLDS,
    fractions: tuple[float, ...] = TUNE_FRACTIONS,
    group_column: str = "source",
    desc: str = "tuning post-processing",
    max_missed: float | None = None,
) -> dict[str, Any]:
    """Per label, the mask threshold and the smallest kept connected component (share of the image) that maximise
    mean IoU on ``ds``, which must be validation data, never the test set. With a ``group_column`` of several values
    (e.g. phantoms, lesions, lesion-free frames) the mean is taken per group and then averaged, so that no group
    outvotes the others. An empty prediction of an empty mask scores 1 (`binary_metrics`), so this is also where a
    model learns to leave lesion-free frames empty.

    That reward has a price: where a model finds a group's lesions poorly, marking nothing scores almost as well
    there, and the lesion-free groups can pull the threshold up until those lesions are never marked. With
    ``max_missed`` (a share, e.g. 0.05) a setting qualifies only if, in every group, the share of its images with a
    non-empty mask where it still marks a pixel of that mask is at most that much below the plain setting's
    (threshold 0.5, nothing dropped; it always qualifies). Off by default: on the bundled models' held-out data it
    cost more on lesion-free frames than it gave back on lesions (BENCHMARKS.md, "How many lesions the tuned
    settings still mark").

    Returns ``mask_threshold`` and ``min_mask_fraction`` (per label, as `TrusImageProcessor` takes them), and per
    label the validation ``iou`` tuned and ``untuned_iou`` (threshold 0.5, nothing dropped) and ``n_images``."""
    plain = (thresholds.index(0.5), fractions.index(0.0)) if 0.5 in thresholds and 0.0 in fractions else None
    if max_missed is not None and (plain is None or not 0 <= max_missed <= 1):
        raise ValueError(
            f"max_missed must be a share in [0, 1] (got {max_missed}) and is measured against the plain setting: "
            f"thresholds must include 0.5 (got {thresholds}) and fractions 0.0 (got {fractions})"
        )
    scores = postprocessing_scores(pipeline, ds, thresholds, fractions, group_column, desc)
    out: dict[str, Any] = {"mask_threshold": {}, "min_mask_fraction": {}, "iou": {}, "untuned_iou": {}, "n_images": {}}
    for label, by_group in scores.items():
        score = np.mean([g.iou for g in by_group.values()], axis=0)
        allowed = np.ones(score.shape, bool)
        if max_missed is not None:
            for g in by_group.values():
                if g.n_positive:
                    allowed &= g.found >= g.found[plain] - max_missed - 1e-9
        i, j = np.unravel_index(int(np.argmax(np.where(allowed, score, -np.inf))), score.shape)
        if plain is not None:
            out["untuned_iou"][label] = float(score[plain])
            if score[plain] >= score[i, j]:  # a tie keeps the plain setting
                i, j = plain
        out["mask_threshold"][label] = float(thresholds[i])
        out["min_mask_fraction"][label] = float(fractions[j])
        out["iou"][label] = float(score[i, j])
        out["n_images"][label] = int(sum(g.n_images for g in by_group.values()))
    return out


def _frame_ious(pipeline: SegmentationPipeline, ds: datasets.Dataset, chunk: int = 16) -> list[float]:
    """The IoU of every (frame, scored label) of ``ds`` under the pipeline's own post-processing."""
    columns = ground_truth_columns(ds, pipeline.labels, pipeline.primary_label)
    ious = []
    for start in range(0, len(ds), chunk):
        items = ds.select(range(start, min(start + chunk, len(ds))))
        gts = [
            {label: None if item[c] is None else np.asarray(item[c]) for label, c in columns.items()} for item in items
        ]
        results = pipeline.predict([np.asarray(im) for im in items["image"]], gts)
        ious += [m["iou"] for r in results for m in r.label_metrics.values()]
    return ious


def tune_input_size(
    members: Sequence[tuple[SegmentationPipeline, datasets.Dataset]],
    sides: Sequence[int],
    min_gain: float = 0.005,
    on: str = "validation frames",
    desc: str = "tuning the input size",
    multiscale: bool = False,
) -> dict[str, Any]:
    """The square model input side, among ``sides`` and the one the weights were trained at, that maximises the
    mean IoU (over frames and scored labels, at the pipelines' own thresholds) of each pipeline on its own validation
    frames, pooled. For a k-fold run every fold model scores the fold it was not trained on, so every frame counts
    once, scored by a model that never learnt from it (`train_kfold`); a single run scores its validation split.
    Validation data only, never the test set.

    Why: a model fine-tuned at one size can outline better at another (the demo models' inputs are 256 pixels,
    small lesions of a few hundred pixels; BENCHMARKS.md, the seed-scale benchmark). A side other than the trained
    one is taken only where it beats the trained side by at least ``min_gain`` IoU: on ~100 frames the paired
    difference between two sizes carries noise of about that order, and the trained size is the safe default.
    With ``multiscale`` one more candidate averages the predictions of all the sides (`TrusImageProcessor`'s
    ``multiscale``: one forward pass per side, so inference costs that many times more).

    Returns what `TrusImageProcessor.set_input_size` takes: ``size`` (the chosen size; the trained one when
    multi-scale wins), ``multiscale`` (the sides averaged, or None), ``trained`` (the size the weights were trained
    at), ``scores`` (mean IoU per candidate: a side, or the sides joined by ``+``), ``frames`` (how many frames were
    scored) and ``on``."""
    if not members:
        raise ValueError("tune_input_size needs at least one (pipeline, validation frames) pair")
    trained = members[0][0].processor.trained_size
    if trained["height"] != trained["width"] or any(p.processor.trained_size != trained for p, _ in members):
        raise ValueError(
            f"tune_input_size compares square inputs of models trained at one square size; got "
            f"{[p.processor.trained_size for p, _ in members]}"
        )
    candidates = sorted({int(trained["height"]), *(int(s) for s in sides)})
    if candidates[0] < 32:
        raise ValueError(f"input sides must be at least 32 pixels, got {list(sides)}")
    side = int(trained["height"])
    options = [(str(s), s, None) for s in candidates]  # (name, size, sides averaged)
    if multiscale and len(candidates) > 1:
        options.append(("+".join(map(str, candidates)), side, candidates))
    scores: dict[str, float] = {}
    for name, size, averaged in progress(options, desc=desc, unit="size"):
        ious = []
        for pipeline, ds in members:
            original = pipeline.processor
            pipeline.processor = original.with_size(size, averaged)
            try:
                ious += _frame_ious(pipeline, ds)
            finally:
                pipeline.processor = original
        scores[name] = float(np.mean(ious))
    best = max(options, key=lambda o: scores[o[0]])
    if scores[best[0]] < scores[str(side)] + min_gain:
        best = (str(side), side, None)
    _, size, averaged = best
    return {
        "size": {"height": size, "width": size},
        "multiscale": averaged,
        "trained": dict(trained),
        "scores": {k: round(v, 4) for k, v in scores.items()},
        "frames": sum(len(ds) for _, ds in members),
        "on": on,
    }


def describe_input_size(tuned: dict[str, Any]) -> str:
    """One line for a `tune_input_size` result (the CLI and the training log print it)."""
    side, trained = tuned["size"]["height"], tuned["trained"]["height"]
    chosen = (
        f"sides {'+'.join(map(str, tuned['multiscale']))} averaged" if tuned.get("multiscale") else f"{side}x{side}"
    )
    scores = ", ".join(f"{s}: {v:.4f}" for s, v in tuned["scores"].items())
    return (
        f"input size {chosen} (trained at {trained}x{trained}); mean IoU on {tuned['frames']} {tuned['on']} "
        f"per side: {scores}"
    )


def describe_postprocessing(tuned: dict[str, Any]) -> list[str]:
    """One line per label of a `tune_postprocessing` result (the CLI prints them, the model cards carry them)."""
    return [
        f"{label}: threshold {tuned['mask_threshold'][label]:g}, components under "
        f"{tuned['min_mask_fraction'][label]:.2%} of the image dropped; validation IoU "
        f"{tuned['untuned_iou'].get(label, float('nan')):.4f} -> {tuned['iou'][label]:.4f} "
        f"({tuned['n_images'][label]} images)"
        for label in tuned["mask_threshold"]
    ]


def of_label(rows: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["label"] == label]


def summarize(rows: list[dict[str, Any]], primary: str) -> dict[str, Any]:
    """The primary label's summary at the top level (mean, median, std, bootstrap CI per metric) and every scored
    label's under ``labels``."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    per_label = {lb: _summary(of_label(rows, lb)) for lb in labels}
    top = per_label.get(primary) or per_label[labels[0]]
    return {**top, "labels": per_label}


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
    """Evaluate every model on ``ds`` and write per_image.csv, summary.json, plots and report.html into ``out_dir``.
    Several labels: summaries and paired comparisons per label (the primary label's at the top level)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(pipelines)
    primary = pipelines[names[0]].primary_label
    rows = {n: evaluate_dataset(p, ds, keep_predictions=True, desc=f"evaluating {n}") for n, p in pipelines.items()}
    summary: dict[str, Any] = {
        "dataset_size": len(ds),
        "primary_label": primary,
        "models": {n: summarize(r, primary) for n, r in rows.items()},
    }
    if len(names) >= 2:
        summary["comparisons"] = {}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                shared = [lb for lb in summary["models"][a]["labels"] if lb in summary["models"][b]["labels"]]
                per_label = {
                    lb: {m: compare(of_label(rows[a], lb), of_label(rows[b], lb), m) for m in ("iou", "dice")}
                    for lb in shared
                }
                top = per_label.get(primary) or per_label[shared[0]]
                summary["comparisons"][f"{a} vs {b}"] = {**top, "labels": per_label}
    fields = ["model", "index", "file", "group", "label", *_METRICS, "hd95", "pred_area", "target_area", "inference_ms"]
    write_csv(out / "per_image.csv", [{"model": n, **r} for n in names for r in rows[n]], fields)
    write_json(out / "summary.json", summary)
    write_report(out, {n: of_label(r, primary) or r for n, r in rows.items()}, summary, ds, n_examples)
    for n in names:
        for r in rows[n]:
            r.pop("_pred", None)
    summary["report"] = str(out / "report.html")
    return summary
