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


def _polygon_mask(label: Path, size: tuple[int, int], keep: set[int] | None, report: DataReport) -> np.ndarray:
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    for ln, line in enumerate(label.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 7 or len(parts) % 2 == 0:
            report.skip(label, f"line {ln}: expected 'class x1 y1 x2 y2 x3 y3 ...', got {len(parts)} fields")
            continue
        if keep is not None and int(parts[0]) not in keep:
            continue
        pts = np.asarray(parts[1:], np.float64).reshape(-1, 2) * [w, h]
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def yolo_seg_candidates(
    root: Path, report: DataReport, categories: Sequence[str] | None = None, group_pattern: str | None = None
) -> dict[str, list[Candidate]]:
    names = _class_names(root)
    keep = None
    if categories:
        unknown = [c for c in categories if c not in names]
        if unknown:
            raise ValueError(f"{root}: classes {unknown} not in data.yaml names {names}")
        keep = {names.index(c) for c in categories}
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
            items.append(Candidate(img, _polygon_mask(label, size, keep, report), group_from(img.stem, group_pattern)))
        splits[split] = items
    return splits
