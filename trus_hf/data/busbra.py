"""BUS-BRA (breast ultrasound, Gómez-Flores et al., Medical Physics 2024) as training and evaluation data: real
speckle from four scanners, lesions outlined by experts, official folds, case groups, and the device of each frame.

BUS-BRA has no lesion-free frames and no prostate, so for a ``gland`` + ``lesion`` model its frames carry the
lesion label only (the gland is not annotated: left out of the loss), and `lesion_free_crops` cuts regions away
from each lesion into frames whose lesion label is annotated and empty: the negatives a model needs to learn to
leave normal tissue alone.

Example (skipped where the data are absent):
    >>> from pathlib import Path
    >>> from trus_hf.data.busbra import load_busbra
    >>> root = Path("../shared/data/busbra")
    >>> ds = load_busbra(root, devices=["Toshiba"]) if root.is_dir() else None
    >>> ds is None or len(ds) == 139
    True
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np

from ..arrays import mask_to_binary
from ..fileio import read_image
from .collect import mask_column, png_bytes, to_dataset

__all__ = ["busbra_table", "lesion_free_crops", "load_busbra"]


def busbra_table(root: str | Path) -> list[dict[str, str]]:
    """One row per frame: ``ID``, ``Case``, ``Device``, ``Pathology``, ``kFold`` (the official test fold)."""
    root = Path(root)
    if not (root / "bus_data.csv").is_file():
        raise ValueError(f"{root}: not a BUS-BRA folder (no bus_data.csv); expected images/, masks/, bus_data.csv")
    with open(root / "bus_data.csv", newline="") as f:
        rows = {r["ID"]: r for r in csv.DictReader(f)}
    if (root / "5-fold-cv.csv").is_file():
        with open(root / "5-fold-cv.csv", newline="") as f:
            for r in csv.DictReader(f):
                if r["ID"] in rows:
                    rows[r["ID"]]["kFold"] = r["kFold"]
    return list(rows.values())


def _select(rows: list[dict[str, str]], devices: Sequence[str] | None, exclude_devices: Sequence[str] | None):
    def match(device: str, names: Sequence[str]) -> bool:
        return any(n.lower() in device.lower() for n in names)

    if devices:
        rows = [r for r in rows if match(r["Device"], devices)]
    if exclude_devices:
        rows = [r for r in rows if not match(r["Device"], exclude_devices)]
    return rows


def _row(image: np.ndarray, masks: dict[str, np.ndarray | None], r: dict[str, str], file: str, source: str) -> dict:
    return {
        "image": {"bytes": png_bytes(image), "path": None},
        **{k: None if m is None else {"bytes": png_bytes(m), "path": None} for k, m in masks.items()},
        "group": f"busbra_{int(r['Case']):04d}",
        "source": source,
        "file": file,
        "device": r["Device"],
        "kFold": r.get("kFold", ""),
    }


def _masks(lesion: np.ndarray, labels: Sequence[str] | None) -> dict[str, np.ndarray | None]:
    if not labels:
        return {"mask": lesion}
    return {mask_column(lb): lesion if lb == "lesion" else None for lb in labels}


def load_busbra(
    root: str | Path,
    devices: Sequence[str] | None = None,
    exclude_devices: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> datasets.Dataset:
    """The frames of the chosen scanners (substrings of ``Device``, e.g. ``["Toshiba"]``) with their lesion masks,
    case groups, device and official fold. ``labels`` (which must include ``lesion``) makes ``mask_<label>``
    columns, every label but the lesion not annotated (None)."""
    root = Path(root)
    if labels and "lesion" not in labels:
        raise ValueError(f"BUS-BRA annotates lesions; labels {list(labels)} do not include 'lesion'")
    rows = _select(busbra_table(root), devices, exclude_devices)
    if ids is not None:
        wanted = set(ids)
        rows = [r for r in rows if r["ID"] in wanted]
    out = []
    for r in rows:
        image = read_image(root / "images" / f"{r['ID']}.png")
        lesion = mask_to_binary(read_image(root / "masks" / f"{r['ID']}.png"), name=f"{r['ID']} mask")
        out.append(_row(image, _masks(lesion, labels), r, f"{r['ID']}.png", "busbra"))
    return to_dataset(out, extra_columns=("device", "kFold"), labels=list(labels) if labels else None)


def _free_box(mask: np.ndarray, margin: float, min_side: float) -> tuple[int, int, int, int] | None:
    """The largest strip of the frame (left, right, above or below the lesion) that keeps ``margin`` of the frame
    away from it, if both its sides are at least ``min_side`` of the frame's."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return 0, 0, w, h
    mx, my = int(margin * w), int(margin * h)
    x0, x1, y0, y1 = xs.min() - mx, xs.max() + 1 + mx, ys.min() - my, ys.max() + 1 + my
    boxes = [(0, 0, x0, h), (x1, 0, w, h), (0, 0, w, y0), (0, y1, w, h)]
    good = [
        (bx0, by0, bx1, by1)
        for bx0, by0, bx1, by1 in boxes
        if bx1 - bx0 >= min_side * w and by1 - by0 >= min_side * h and 0.4 <= (bx1 - bx0) / (by1 - by0) <= 2.5
    ]
    if not good:
        return None
    return max(good, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def lesion_free_crops(
    root: str | Path,
    devices: Sequence[str] | None = None,
    exclude_devices: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    margin: float = 0.05,
    min_side: float = 0.35,
    ids: Sequence[str] | None = None,
) -> datasets.Dataset:
    """Lesion-free frames cut from BUS-BRA: for each frame, the largest region left, right, above or below the
    lesion (``margin`` of the frame away from it, each side at least ``min_side`` of the frame's), when one exists.
    Their lesion label is annotated and empty; other labels are not annotated."""
    root = Path(root)
    rows = _select(busbra_table(root), devices, exclude_devices)
    if ids is not None:
        wanted = set(ids)
        rows = [r for r in rows if r["ID"] in wanted]
    out = []
    for r in rows:
        lesion = mask_to_binary(read_image(root / "masks" / f"{r['ID']}.png"), name=f"{r['ID']} mask")
        box = _free_box(lesion, margin, min_side)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        image = np.ascontiguousarray(read_image(root / "images" / f"{r['ID']}.png")[y0:y1, x0:x1])
        empty = np.zeros(image.shape[:2], np.uint8)
        assert not lesion[y0:y1, x0:x1].any()  # by construction
        out.append(_row(image, _masks(empty, labels), r, f"{r['ID']}_free.png", "busbra-lesion-free"))
    return to_dataset(out, extra_columns=("device", "kFold"), labels=list(labels) if labels else None)
