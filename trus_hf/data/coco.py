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
    ann_file: Path,
    category_names: Sequence[str] | None,
    report: DataReport,
    label_map: dict[str, Sequence[str]] | None = None,
) -> list[tuple[Path, np.ndarray, dict[str, np.ndarray | None] | None]]:
    """(image, mask of the kept categories, per-label masks when ``label_map`` names each label's categories; a
    label without any annotation on the image is None)."""
    try:
        coco = json.loads(ann_file.read_text())
        images, anns, cats = coco["images"], coco.get("annotations", []), coco.get("categories", [])
    except Exception as exc:
        raise ValueError(f"{ann_file}: not a COCO annotation file ({exc.__class__.__name__}: {exc})") from exc
    by_name = {c["name"]: c["id"] for c in cats}
    wanted = list(category_names or []) + [n for names in (label_map or {}).values() for n in names]
    unknown = sorted({n for n in wanted if n not in by_name})
    if unknown:
        raise ValueError(f"{ann_file}: categories {unknown} not found; available: {sorted(by_name)}")
    keep_ids = {by_name[n] for n in category_names} if category_names else None
    label_ids = {label: {by_name[n] for n in names} for label, names in (label_map or {}).items()}
    per_image: dict[int, list[dict]] = {}
    for a in anns:
        per_image.setdefault(a["image_id"], []).append(a)
    out = []
    for im in images:
        path = ann_file.parent / im["file_name"]
        h, w = int(im["height"]), int(im["width"])
        mask = np.zeros((h, w), np.uint8)
        labels: dict[str, np.ndarray | None] = {label: None for label in label_ids}
        for a in per_image.get(im["id"], []):
            if not a.get("segmentation"):
                continue
            try:
                part = _rasterise(a["segmentation"], h, w)
            except Exception as exc:
                report.skip(path, f"annotation {a.get('id')}: undecodable segmentation ({exc})")
                continue
            if part is None:
                continue
            if keep_ids is None or a.get("category_id") in keep_ids:
                mask |= part
            for label, ids in label_ids.items():
                if a.get("category_id") in ids:
                    labels[label] = part if labels[label] is None else labels[label] | part
        out.append((path, mask, labels if label_map else None))
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
    root: Path,
    report: DataReport,
    categories: Sequence[str] | None = None,
    group_pattern: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: dict[str, Sequence[str]] | None = None,
) -> dict[str, list[Candidate]]:
    """Several labels: ``label_map`` gives each label its categories (default: the category of the same name)."""
    if labels:
        label_map = {label: list((label_map or {}).get(label, [label])) for label in labels}
    splits = {}
    for split, f in _annotation_files(root).items():
        items = []
        for path, mask, label_masks in _coco_masks(f, categories, report, label_map if labels else None):
            if not path.is_file():
                report.skip(path, "image listed in the COCO file is missing")
                continue
            items.append(Candidate(path, mask, group_from(path.stem, group_pattern), label_masks=label_masks))
        splits[split] = items
    return splits
