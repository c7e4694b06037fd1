"""Binary segmentation metrics, per image and aggregated.

Convention for empty masks (documented and tested): when prediction and ground truth are both empty the image scores
1.0 on IoU, Dice, precision and recall (the model correctly found nothing); when exactly one is empty it scores 0.0.
HD95 is 0.0 when both are empty and ``inf`` when exactly one is.

Example:
    >>> import numpy as np
    >>> from trus_hf.metrics import binary_metrics
    >>> gt = np.zeros((8, 8), np.uint8); gt[2:6, 2:6] = 1
    >>> pred = np.zeros((8, 8), np.uint8); pred[2:6, 2:4] = 1
    >>> m = binary_metrics(pred, gt)
    >>> round(m["iou"], 3), round(m["dice"], 3)
    (0.5, 0.667)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = ["EVALUATE_MODULE_PATH", "aggregate", "binary_metrics", "confusion", "hd95"]

#: Path of the bundled ``evaluate`` metric module: ``evaluate.load(EVALUATE_MODULE_PATH)`` works offline.
EVALUATE_MODULE_PATH = str(Path(__file__).parent / "evaluate_metrics" / "trus_segmentation")


def _as_bool(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask, got shape {mask.shape}")
    return mask.astype(bool)


def confusion(pred: np.ndarray, target: np.ndarray) -> tuple[int, int, int, int]:
    """Pixel counts (tp, fp, fn, tn) of two binary masks of the same shape."""
    p, t = _as_bool(pred, "pred"), _as_bool(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return tp, fp, fn, int(p.size - tp - fp - fn)


def _ratio(num: int, den: int) -> float:
    # den == 0 only when both masks are empty for the ratio in question: that is a correct "nothing found".
    return 1.0 if den == 0 else num / den


def hd95(pred: np.ndarray, target: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """95th percentile symmetric Hausdorff distance between mask boundaries, in units of ``spacing``."""
    p, t = _as_bool(pred, "pred"), _as_bool(target, "target")
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return float("inf")
    p_edge = p & ~ndimage.binary_erosion(p)
    t_edge = t & ~ndimage.binary_erosion(t)
    dt_t = ndimage.distance_transform_edt(~t_edge, sampling=spacing)
    dt_p = ndimage.distance_transform_edt(~p_edge, sampling=spacing)
    dists = np.concatenate([dt_t[p_edge], dt_p[t_edge]])
    return float(np.percentile(dists, 95))


def binary_metrics(pred: np.ndarray, target: np.ndarray, with_hd95: bool = False) -> dict[str, float]:
    """IoU, Dice, precision, recall and areas of one predicted mask against its ground truth."""
    tp, fp, fn, tn = confusion(pred, target)
    out = {
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp) if (tp + fn) or (tp + fp) else 1.0,
        "recall": _ratio(tp, tp + fn) if (tp + fp) or (tp + fn) else 1.0,
        "pred_area": tp + fp,
        "target_area": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }
    # One empty, the other not: precision/recall of the empty side's denominator is 0 -> defined as 0.0.
    if tp + fp == 0 and tp + fn > 0:
        out["precision"] = 0.0
    if tp + fn == 0 and tp + fp > 0:
        out["recall"] = 0.0
    if with_hd95:
        out["hd95"] = hd95(pred, target)
    return out


def aggregate(per_image: list[dict[str, float]]) -> dict[str, float]:
    """Mean over images (``mean_iou``, ``mean_dice``...) and micro (pooled pixel) IoU/Dice over a dataset."""
    if not per_image:
        raise ValueError("aggregate() needs at least one per-image result")
    tp = sum(m["tp"] for m in per_image)
    fp = sum(m["fp"] for m in per_image)
    fn = sum(m["fn"] for m in per_image)
    out = {f"mean_{k}": float(np.mean([m[k] for m in per_image])) for k in ("iou", "dice", "precision", "recall")}
    if all("hd95" in m for m in per_image):
        finite = [m["hd95"] for m in per_image if np.isfinite(m["hd95"])]
        out["mean_hd95_finite"] = float(np.mean(finite)) if finite else float("nan")
    out["micro_iou"] = _ratio(tp, tp + fp + fn)
    out["micro_dice"] = _ratio(2 * tp, 2 * tp + fp + fn)
    out["n_images"] = len(per_image)
    return out
