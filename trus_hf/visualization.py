"""Pictures of predictions: mask overlays on the original image, probability heatmaps, model disagreement."""

from __future__ import annotations

import cv2
import numpy as np

from .arrays import to_rgb8

__all__ = ["disagreement", "heatmap", "overlay", "to_rgb8"]


def _outline(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> None:
    thick = max(1, round(max(rgb.shape[:2]) / 300))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, color, thick)


def overlay(image: np.ndarray, mask: np.ndarray, gt: np.ndarray | None = None, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8: the predicted mask as a red fill and outline, the ground truth (if any) as a green outline."""
    rgb = to_rgb8(image).copy()
    m = mask.astype(bool)
    rgb[m] = (rgb[m] * (1 - alpha) + np.array([255, 40, 40]) * alpha).astype(np.uint8)
    _outline(rgb, mask, (255, 60, 60))
    if gt is not None:
        _outline(rgb, gt, (60, 255, 60))
    return rgb


def heatmap(probabilities: np.ndarray) -> np.ndarray:
    """Probability map in [0, 1] as an RGB uint8 heatmap (inferno colormap)."""
    p = (np.clip(probabilities, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(p, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def disagreement(image: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
    """RGB uint8: where only model A says lesion (orange), only B (cyan), both (white outline)."""
    rgb = (to_rgb8(image) * 0.6).astype(np.uint8)
    a, b = mask_a.astype(bool), mask_b.astype(bool)
    rgb[a & ~b] = (255, 150, 0)
    rgb[b & ~a] = (0, 200, 255)
    _outline(rgb, (a & b).astype(np.uint8), (255, 255, 255))
    return rgb
