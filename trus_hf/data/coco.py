"""COCO segmentation JSON as Roboflow and CVAT export it: polygons and RLE, several annotations per image merged,
optional category filter; one ``_annotations.coco.json`` per split folder or a single JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .collect import Candidate, DataReport, group_from, split_dirs

__all__ = ["coco_candidates"]


def _rasterise(seg, h: int, w: int) -> np.ndarray | None:
    """One annotation's segmentation (polygons, uncompressed or compressed RLE) as a 0/1 mask; None if empty."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):  # polygons
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            return None
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    elif isinstance(seg.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, h, w)
    else:  # compressed RLE
        rle = {
            "size": seg["size"],
            "counts": seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"],
        }
    return mask_utils.decode(rle).astype(np.uint8)


def _coco_masks(
    ann_file: Path, category_names: Sequence[str] | None, report: DataReport
) -> list[tuple[Path, np.ndarray]]:
    try:
        coco = json.loads(ann_file.read_text())
        images, anns, cats = coco["images"], coco.get("annotations", []), coco.get("categories", [])
    except Exception as exc:
        raise ValueError(f"{ann_file}: not a COCO annotation file ({exc.__class__.__name__}: {exc})") from exc
    keep_ids = None
    if category_names:
        by_name = {c["name"]: c["id"] for c in cats}
        unknown = [n for n in category_names if n not in by_name]
        if unknown:
            raise ValueError(f"{ann_file}: categories {unknown} not found; available: {sorted(by_name)}")
        keep_ids = {by_name[n] for n in category_names}
    per_image: dict[int, list[dict]] = {}
    for a in anns:
        per_image.setdefault(a["image_id"], []).append(a)
    out = []
    for im in images:
        path = ann_file.parent / im["file_name"]
        h, w = int(im["height"]), int(im["width"])
        mask = np.zeros((h, w), np.uint8)
        for a in per_image.get(im["id"], []):
            if (keep_ids is not None and a.get("category_id") not in keep_ids) or not a.get("segmentation"):
                continue
            try:
                part = _rasterise(a["segmentation"], h, w)
            except Exception as exc:
                report.skip(path, f"annotation {a.get('id')}: undecodable segmentation ({exc})")
                continue
            if part is not None:
                mask |= part
        out.append((path, mask))
    return out


def _annotation_files(root: Path) -> dict[str, Path]:
    if root.is_file():
        return {"train": root}
    files = {split: d / "_annotations.coco.json" for split, d in split_dirs(root, "_annotations.coco.json").items()}
    if any(f.is_file() for f in files.values()):
        return files
    jsons = sorted(root.glob("*.json"))
    if len(jsons) != 1:
        raise ValueError(
            f"{root}: expected _annotations.coco.json (per split folder) or one COCO .json file, "
            f"found {[j.name for j in jsons]}"
        )
    return {"train": jsons[0]}


def coco_candidates(
    root: Path, report: DataReport, categories: Sequence[str] | None = None, group_pattern: str | None = None
) -> dict[str, list[Candidate]]:
    splits = {}
    for split, f in _annotation_files(root).items():
        items = []
        for path, mask in _coco_masks(f, categories, report):
            if not path.is_file():
                report.skip(path, "image listed in the COCO file is missing")
                continue
            items.append(Candidate(path, mask, group_from(path.stem, group_pattern)))
        splits[split] = items
    return splits
