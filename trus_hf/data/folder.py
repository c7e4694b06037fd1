"""Folder datasets: ``images/`` and ``masks/`` paired by file stem (optional mask suffix such as ``_mask``), optional
``train/``, ``valid/``, ``test/`` subfolders as splits, and root CSV/JSONL tables that give ``group`` and extra
columns per file. CVAT's "Segmentation mask" export (``JPEGImages/`` + ``SegmentationClass/``) is the same layout.

Several labels: one mask folder per label (``masks_gland/``, ``masks_lesion/``), or one folder of indexed masks
(``masks/``, pixel value = class) with ``label_values`` such as ``{"gland": [1, 2], "lesion": [2]}``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..fileio import read_image
from .collect import Candidate, DataReport, group_from, images_in, root_tables, split_dirs

__all__ = ["cvat_candidates", "folder_candidates"]


def _masks_by_stem(folder: Path, mask_suffix: str) -> dict[str, Path]:
    masks = {}
    if folder.is_dir():
        for p in images_in(folder):
            stem = p.stem[: -len(mask_suffix)] if mask_suffix and p.stem.endswith(mask_suffix) else p.stem
            masks[stem] = p
    return masks


def _indexed(
    path: Path | None, label_values: dict[str, Sequence[int]], report: DataReport
) -> dict[str, np.ndarray | None]:
    """One indexed mask (pixel value = class) -> a 0/1 mask per label (a label may take several values)."""
    if path is None:
        return {label: None for label in label_values}
    try:
        raw = read_image(path)
    except ValueError as exc:
        report.skip(path, f"invalid mask: {exc}")
        return {label: None for label in label_values}
    raw = raw[..., 0] if raw.ndim == 3 else raw
    return {label: np.isin(raw, list(values)).astype(np.uint8) for label, values in label_values.items()}


def _label_folders(sdir: Path, masks_dir: str, labels: Sequence[str], mask_suffix: str) -> dict[str, dict[str, Path]]:
    per_label = {}
    for label in labels:
        folder = sdir / f"{masks_dir}_{label}"
        if not folder.is_dir():
            raise ValueError(
                f"{sdir}: expected a '{masks_dir}_{label}/' folder for label {label!r} (or indexed "
                f"masks in '{masks_dir}/' with label_values)"
            )
        per_label[label] = _masks_by_stem(folder, mask_suffix)
    return per_label


def folder_candidates(
    root: Path,
    report: DataReport,
    mask_suffix: str = "",
    images_dir: str = "images",
    masks_dir: str = "masks",
    group_pattern: str | None = None,
    extra_columns: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    label_values: dict[str, Sequence[int]] | None = None,
) -> dict[str, list[Candidate]]:
    if label_values and not labels:
        labels = list(label_values)
    if label_values and set(labels) - set(label_values):
        raise ValueError(f"label_values gives no pixel values for {sorted(set(labels) - set(label_values))}")
    splits = {}
    for split, sdir in split_dirs(root, images_dir).items():
        if not (sdir / images_dir).is_dir():
            raise ValueError(f"{sdir}: expected an '{images_dir}/' folder (and '{masks_dir}/') for format 'folder'")
        masks = _masks_by_stem(sdir / masks_dir, mask_suffix)
        per_label = _label_folders(sdir, masks_dir, labels, mask_suffix) if labels and not label_values else {}
        table = root_tables(root, ["group", *extra_columns])
        if sdir != root:
            table.update(root_tables(sdir, ["group", *extra_columns]))
        items = []
        for img in images_in(sdir / images_dir):
            info = table.get(img.stem, {})
            group = info.get("group") or group_from(img.stem, group_pattern)
            extra = {c: info.get(c) for c in extra_columns}
            label_masks = None
            if labels and label_values:
                label_masks = _indexed(masks.get(img.stem), {lb: label_values[lb] for lb in labels}, report)
            elif labels:
                label_masks = {label: per_label[label].get(img.stem) for label in labels}
            items.append(Candidate(img, masks.get(img.stem), str(group), extra, label_masks=label_masks))
        splits[split] = items
    return splits


def cvat_candidates(root: Path, report: DataReport, **kwargs) -> dict[str, list[Candidate]]:
    """CVAT's "Segmentation mask" export: a folder of images and same-stem mask PNGs (``SegmentationClass/``)."""
    masks_dir = "SegmentationClass" if (root / "SegmentationClass").is_dir() else "masks"
    images_dir = "JPEGImages" if (root / "JPEGImages").is_dir() else "images"
    return folder_candidates(root, report, images_dir=images_dir, masks_dir=masks_dir, **kwargs)
