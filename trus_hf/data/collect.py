"""The one collector every format loader feeds: candidates (an image path and where its mask comes from) are read,
validated and turned into dataset rows; every problem is recorded in a `DataReport`, never dropped silently.

Also the small helpers the loaders share: split folders, images in a folder, per-file tables (CSV/JSONL), groups
from file names.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from PIL import Image

from ..arrays import mask_to_binary
from ..fileio import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, read_image

__all__ = [
    "FEATURES",
    "Candidate",
    "DataReport",
    "collect",
    "group_from",
    "images_in",
    "png_bytes",
    "root_tables",
    "split_dirs",
    "to_dataset",
]

logger = logging.getLogger(__name__)

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "mask": datasets.Image(),
        "group": datasets.Value("string"),
        "source": datasets.Value("string"),
        "file": datasets.Value("string"),
    }
)
_SPLIT_NAMES = {
    "train": "train",
    "valid": "validation",
    "val": "validation",
    "validation": "validation",
    "test": "test",
}
_KEY_COLUMNS = ("filename", "file_name", "file", "id", "image", "name")


@dataclass
class DataReport:
    """What a load found: items loaded per split, and every skipped item with its reason."""

    loaded: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, file: str | Path, reason: str) -> None:
        self.skipped.append((str(file), reason))

    def summary(self) -> str:
        lines = [f"loaded: {dict(self.loaded)}", f"skipped: {len(self.skipped)}"]
        lines += [f"  {f}: {r}" for f, r in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"loaded": dict(self.loaded), "skipped": [{"file": f, "reason": r} for f, r in self.skipped]}


@dataclass
class Candidate:
    """One image a loader found, before validation.

    ``mask`` is a mask file, an already rasterised array (COCO, YOLO, Roboflow), or None when the loader found no
    label for the image (recorded as "missing mask"). ``source`` overrides the loader's name in the ``source``
    column.
    """

    image: Path
    mask: Path | np.ndarray | None
    group: str
    extra: dict[str, Any] = field(default_factory=dict)
    source: str | None = None


def png_bytes(arr: np.ndarray) -> bytes:
    """Lossless PNG of a uint8/uint16 image or a 0/1 mask."""
    buf = io.BytesIO()
    Image.fromarray(arr if arr.dtype in (np.uint8, np.uint16) else arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _image_value(path: Path, report: DataReport) -> tuple[Any, tuple[int, int]] | None:
    """What the ``image`` column stores for ``path`` and the image size (width, height); None after a skip."""
    if path.suffix.lower() in DICOM_EXTENSIONS:
        # datasets' Image feature cannot decode DICOM: store the decoded frame as a lossless (8/16-bit) PNG.
        try:
            arr = read_image(path)
        except ValueError as exc:
            report.skip(path, f"unreadable image: {exc}")
            return None
        return {"bytes": png_bytes(arr), "path": None}, (arr.shape[1], arr.shape[0])
    try:
        with Image.open(path) as im:
            size = im.size  # header only: cheap; the full decode happens when the dataset is used
            im.verify()
    except Exception as exc:
        report.skip(path, f"unreadable image: {exc.__class__.__name__}: {exc}")
        return None
    return str(path), size


def _row(c: Candidate, source: str, report: DataReport) -> dict[str, Any] | None:
    """Read and check one candidate; returns a dataset row, or None after recording why it was skipped."""
    image = _image_value(c.image, report)
    if image is None:
        return None
    image_value, size = image
    if c.mask is None:
        report.skip(c.image, "missing mask")
        return None
    mask_name = str(c.mask) if isinstance(c.mask, Path) else str(c.image)
    try:
        m = mask_to_binary(read_image(c.mask) if isinstance(c.mask, Path) else c.mask, name=mask_name)
    except ValueError as exc:
        report.skip(mask_name, f"invalid mask: {exc}")
        return None
    if (m.shape[1], m.shape[0]) != size:
        report.skip(mask_name, f"size mismatch: image {size[0]}x{size[1]}, mask {m.shape[1]}x{m.shape[0]}")
        return None
    return {
        "image": image_value,
        "mask": {"bytes": png_bytes(m), "path": None},
        "group": c.group,
        "source": c.source or source,
        "file": c.image.name,
        **c.extra,
    }


def collect(
    candidates: dict[str, Iterable[Candidate]], source: str, report: DataReport
) -> dict[str, list[dict[str, Any]]]:
    """Validated rows per split; every rejected candidate is recorded in ``report``."""
    splits = {}
    for split, items in candidates.items():
        splits[split] = [row for row in (_row(c, source, report) for c in items) if row is not None]
    return splits


def to_dataset(rows: list[dict[str, Any]], extra_columns: Sequence[str] = ()) -> datasets.Dataset:
    features = FEATURES.copy()
    for col in extra_columns:
        features[col] = datasets.Value("string")
    columns = {k: [r.get(k) for r in rows] for k in features}
    for col in extra_columns:
        columns[col] = [None if v is None else str(v) for v in columns[col]]
    return datasets.Dataset.from_dict(columns, features=features)


# ----------------------------------------------------------------------------------------------- shared helpers
def images_in(folder: Path) -> list[Path]:
    """Image and DICOM files directly in ``folder`` (hidden files excluded), sorted."""
    exts = IMAGE_EXTENSIONS + DICOM_EXTENSIONS
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
    )


def split_dirs(root: Path, marker: str) -> dict[str, Path]:
    """Split subfolders (train/valid/test) that contain ``marker``; else the root as 'train'."""
    found = {}
    for name, split in _SPLIT_NAMES.items():
        if (root / name / marker).exists():
            found[split] = root / name
    return found or {"train": root}


def group_from(stem: str, pattern: str | None) -> str:
    """The group (patient, case) of a file: the first group of ``pattern`` matched in its stem, else the stem."""
    if pattern:
        m = re.search(pattern, stem)
        if m:
            return m.group(1) if m.groups() else m.group(0)
    return stem


def root_tables(root: Path, columns: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per-stem values of ``columns`` from CSV/JSONL files at ``root`` (keyed by a file-name or ID column)."""
    wanted = set(columns)
    table: dict[str, dict[str, Any]] = {}
    for f in sorted(root.glob("*.csv")) + sorted(root.glob("*.jsonl")):
        try:
            if f.suffix == ".csv":
                with open(f, newline="") as fh:
                    records = list(csv.DictReader(fh))
            else:
                records = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        except Exception as exc:
            logger.warning("ignoring %s: %s", f, exc)
            continue
        if not records:
            continue
        key = next((k for k in records[0] if k.lower() in _KEY_COLUMNS), None)
        if key is None or not wanted & set(records[0]):
            continue
        for rec in records:
            stem = Path(str(rec[key])).stem
            table.setdefault(stem, {}).update({k: rec[k] for k in wanted if k in rec and rec[k] not in (None, "")})
    return table
