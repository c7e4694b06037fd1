"""Pictures of predictions: mask overlays on the original image (one colour per label, the ground truth as an
outline), annotation layers that tell prediction, ground truth and their overlap apart, probability heatmaps and
model disagreement.

Example:
    >>> import numpy as np
    >>> from trus_hf.visualization import overlay
    >>> image = np.zeros((32, 32), np.uint8)
    >>> mask = np.zeros((32, 32), np.uint8); mask[8:16, 8:16] = 1
    >>> overlay(image, {"gland": mask, "lesion": mask * 0}).shape
    (32, 32, 3)
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .arrays import to_rgb8

__all__ = ["LABEL_COLORS", "annotations", "disagreement", "heatmap", "label_color", "overlay", "to_rgb8"]

#: Display colours (RGB) of the labels trus-hf knows; other labels take colours from `_PALETTE` in turn.
LABEL_COLORS = {"lesion": (255, 60, 60), "gland": (60, 150, 255)}
_PALETTE = [(255, 190, 40), (180, 90, 255), (40, 220, 200), (255, 120, 200)]
GT_COLOR = (60, 255, 60)


def label_color(label: str, index: int = 0) -> tuple[int, int, int]:
    return LABEL_COLORS.get(label, _PALETTE[index % len(_PALETTE)])


def _hex(color: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{c:02x}" for c in color)


def _outline(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> None:
    thick = max(1, round(max(rgb.shape[:2]) / 300))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, color, thick)


def _as_dict(masks: Any, name: str) -> dict[str, np.ndarray]:
    if masks is None:
        return {}
    return dict(masks) if isinstance(masks, dict) else {name: masks}


def overlay(image: np.ndarray, mask: Any, gt: Any = None, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8: each predicted label as a translucent fill and outline in its colour (a single mask: red, as the
    lesion), the ground truth (a mask, or a dict per label) as green outlines."""
    rgb = to_rgb8(image).copy()
    masks = _as_dict(mask, "lesion")
    for i, (label, m) in enumerate(sorted(masks.items(), key=lambda kv: kv[0] != "gland")):  # lesion drawn on top
        m = np.asarray(m).astype(bool)
        color = np.array(label_color(label, i))
        rgb[m] = (rgb[m] * (1 - alpha) + color * alpha).astype(np.uint8)
        _outline(rgb, m, tuple(int(c) for c in color))
    for g in _as_dict(gt, "lesion").values():
        if g is not None:
            _outline(rgb, np.asarray(g), GT_COLOR)
    return rgb


def annotations(
    masks: dict[str, np.ndarray], ground_truths: dict[str, np.ndarray] | None = None
) -> tuple[list[tuple[np.ndarray, str]], dict[str, str]]:
    """Layers for an annotated image (e.g. ``gr.AnnotatedImage``) and their colours: per label its prediction, and
    where a ground truth exists ``predicted only``, ``missed`` (ground truth only) and ``both``."""
    layers, colors = [], {}
    for i, (label, m) in enumerate(masks.items()):
        m = np.asarray(m).astype(bool)
        gt = (ground_truths or {}).get(label)
        base = label_color(label, i)
        if gt is None:
            layers.append((m.astype(np.float32), label))
            colors[label] = _hex(base)
            continue
        g = np.asarray(gt).astype(bool)
        for name, part, color in (
            (f"{label}: predicted only", m & ~g, base),
            (f"{label}: missed", g & ~m, GT_COLOR),
            (f"{label}: both", m & g, (255, 255, 80)),
        ):
            layers.append((part.astype(np.float32), name))
            colors[name] = _hex(color)
    return layers, colors


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
