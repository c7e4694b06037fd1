"""Folder datasets: ``images/`` and ``masks/`` paired by file stem (optional mask suffix such as ``_mask``), optional
``train/``, ``valid/``, ``test/`` subfolders as splits, and root CSV/JSONL tables that give ``group`` and extra
columns per file. CVAT's "Segmentation mask" export (``JPEGImages/`` + ``SegmentationClass/``) is the same layout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .collect import Candidate, DataReport, group_from, images_in, root_tables, split_dirs

__all__ = ["folder_candidates"]


def folder_candidates(
    root: Path,
    report: DataReport,
    mask_suffix: str = "",
    images_dir: str = "images",
    masks_dir: str = "masks",
    group_pattern: str | None = None,
    extra_columns: Sequence[str] = (),
) -> dict[str, list[Candidate]]:
    splits = {}
    for split, sdir in split_dirs(root, images_dir).items():
        if not (sdir / images_dir).is_dir():
            raise ValueError(f"{sdir}: expected an '{images_dir}/' folder (and '{masks_dir}/') for format 'folder'")
        masks = {}
        if (sdir / masks_dir).is_dir():
            for p in images_in(sdir / masks_dir):
                stem = p.stem[: -len(mask_suffix)] if mask_suffix and p.stem.endswith(mask_suffix) else p.stem
                masks[stem] = p
        table = root_tables(root, ["group", *extra_columns])
        if sdir != root:
            table.update(root_tables(sdir, ["group", *extra_columns]))
        items = []
        for img in images_in(sdir / images_dir):
            info = table.get(img.stem, {})
            group = info.get("group") or group_from(img.stem, group_pattern)
            items.append(Candidate(img, masks.get(img.stem), str(group), {c: info.get(c) for c in extra_columns}))
        splits[split] = items
    return splits


def cvat_candidates(root: Path, report: DataReport, **kwargs) -> dict[str, list[Candidate]]:
    """CVAT's "Segmentation mask" export: a folder of images and same-stem mask PNGs (``SegmentationClass/``)."""
    masks_dir = "SegmentationClass" if (root / "SegmentationClass").is_dir() else "masks"
    images_dir = "JPEGImages" if (root / "JPEGImages").is_dir() else "images"
    return folder_candidates(root, report, images_dir=images_dir, masks_dir=masks_dir, **kwargs)
