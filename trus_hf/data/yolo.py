"""YOLO segmentation labels: ``images/`` + ``labels/*.txt`` with normalised polygons, class names in ``data.yaml``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .collect import Candidate, DataReport, group_from, images_in, split_dirs

__all__ = ["yolo_seg_candidates"]


def _class_names(root: Path) -> list[str]:
    import yaml

    names: list[str] = []
    for yaml_file in list(root.glob("*.yaml")) + list(root.glob("*.yml")):
        raw = (yaml.safe_load(yaml_file.read_text()) or {}).get("names", [])
        names = [raw[k] for k in sorted(raw)] if isinstance(raw, dict) else list(raw)
    return names


def _polygon_masks(label: Path, size: tuple[int, int], report: DataReport) -> dict[int, np.ndarray]:
    """The polygons of a label file rasterised per class index."""
    w, h = size
    masks: dict[int, np.ndarray] = {}
    for ln, line in enumerate(label.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 7 or len(parts) % 2 == 0:
            report.skip(label, f"line {ln}: expected 'class x1 y1 x2 y2 x3 y3 ...', got {len(parts)} fields")
            continue
        pts = np.asarray(parts[1:], np.float64).reshape(-1, 2) * [w, h]
        mask = masks.setdefault(int(parts[0]), np.zeros((h, w), np.uint8))
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return masks


def _union(masks: dict[int, np.ndarray], classes: set[int] | None, size: tuple[int, int]) -> np.ndarray | None:
    parts = [m for c, m in masks.items() if classes is None or c in classes]
    if not parts:
        return None
    return np.bitwise_or.reduce(parts) if len(parts) > 1 else parts[0]


def yolo_seg_candidates(
    root: Path,
    report: DataReport,
    categories: Sequence[str] | None = None,
    group_pattern: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: dict[str, Sequence[str]] | None = None,
) -> dict[str, list[Candidate]]:
    """Several labels: ``label_map`` gives each label its class names (default: the class of the same name); a label
    without a polygon on an image is not annotated there."""
    names = _class_names(root)
    wanted = list(categories or []) + [n for lb in (labels or []) for n in (label_map or {}).get(lb, [lb])]
    unknown = sorted({c for c in wanted if c not in names})
    if unknown:
        raise ValueError(f"{root}: classes {unknown} not in data.yaml names {names}")
    keep = {names.index(c) for c in categories} if categories else None
    label_classes = {lb: {names.index(n) for n in (label_map or {}).get(lb, [lb])} for lb in labels or []}
    splits = {}
    for split, sdir in split_dirs(root, "images").items():
        items = []
        for img in images_in(sdir / "images"):
            label = sdir / "labels" / f"{img.stem}.txt"
            if not label.is_file():
                report.skip(img, "missing label file " + str(label))
                continue
            with Image.open(img) as im:
                size = im.size
            polys = _polygon_masks(label, size, report)
            mask = _union(polys, keep, size)
            mask = np.zeros(size[::-1], np.uint8) if mask is None else mask
            label_masks = {lb: _union(polys, cls, size) for lb, cls in label_classes.items()} if labels else None
            items.append(Candidate(img, mask, group_from(img.stem, group_pattern), label_masks=label_masks))
        splits[split] = items
    return splits
