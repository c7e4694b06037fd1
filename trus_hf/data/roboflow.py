"""Roboflow's semantic-mask export: ``*_mask.png`` beside each image (pixel value = class) and ``_classes.csv``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..fileio import read_image
from .collect import Candidate, DataReport, group_from, images_in, split_dirs

__all__ = ["roboflow_mask_candidates"]


def _foreground_values(classes_file: Path, categories: Sequence[str] | None) -> list[int]:
    with open(classes_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = {int(r["Pixel Value"]): r[" Class"].strip() if " Class" in r else r.get("Class", "").strip() for r in rows}
    if categories:
        unknown = [c for c in categories if c not in names.values()]
        if unknown:
            raise ValueError(f"{classes_file}: classes {unknown} not found; available: {sorted(names.values())}")
        return [v for v, n in names.items() if n in categories]
    return [v for v, n in names.items() if v != 0 and n.lower() not in ("background", "_background_")]


def roboflow_mask_candidates(
    root: Path,
    report: DataReport,
    categories: Sequence[str] | None = None,
    group_pattern: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: dict[str, Sequence[str]] | None = None,
) -> dict[str, list[Candidate]]:
    """Several labels: ``label_map`` gives each label its classes (default: the class of the same name). A semantic
    mask annotates every class of every pixel, so a class absent from a mask is an empty label, not a missing one."""
    splits = {}
    for split, sdir in split_dirs(root, "_classes.csv").items():
        classes_file = sdir / "_classes.csv"
        if not classes_file.is_file():
            raise ValueError(f"{sdir}: Roboflow mask export needs _classes.csv")
        fg = _foreground_values(classes_file, categories)
        label_values = {}
        if labels:
            label_values = {
                label: _foreground_values(classes_file, list((label_map or {}).get(label, [label]))) for label in labels
            }
        items = []
        for img in images_in(sdir):
            if img.stem.endswith("_mask"):
                continue
            mpath = sdir / f"{img.stem}_mask.png"
            mask, label_masks = None, ({label: None for label in labels} if labels else None)
            if mpath.is_file():
                try:
                    raw = read_image(mpath)
                except ValueError as exc:
                    report.skip(mpath, str(exc))
                    continue
                raw = raw[..., 0] if raw.ndim == 3 else raw
                mask = np.isin(raw, fg).astype(np.uint8)
                if labels:
                    label_masks = {lb: np.isin(raw, v).astype(np.uint8) for lb, v in label_values.items()}
            items.append(Candidate(img, mask, group_from(img.stem, group_pattern), label_masks=label_masks))
        splits[split] = items
    return splits
