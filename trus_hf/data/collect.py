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
#: What to do when a label has no annotation on an image: refuse (list the files), leave it out of the loss
#: (``ignore``: the column holds None), or take it as annotated and empty (``empty``: no such structure).
MISSING_POLICIES = ("error", "ignore", "empty")
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
    #: Several labels: the mask source of each label (None: no annotation of that label was found for the image).
    label_masks: dict[str, Path | np.ndarray | None] | None = None


def mask_column(label: str) -> str:
    """The dataset column of one label's masks in a multi-label dataset."""
    return f"mask_{label}"


def dataset_labels(ds: datasets.Dataset) -> list[str] | None:
    """The labels of a multi-label dataset (its ``mask_<label>`` columns), or None for a one-mask dataset."""
    labels = [c[len("mask_") :] for c in ds.column_names if c.startswith("mask_")]
    return labels or None


def features_for(labels: Sequence[str] | None = None, extra_columns: Sequence[str] = ()) -> datasets.Features:
    """The columns of a dataset: ``mask`` for one label, ``mask_<label>`` per label otherwise."""
    if labels is None:
        features = FEATURES.copy()
    else:
        features = datasets.Features(
            {
                "image": datasets.Image(),
                **{mask_column(lb): datasets.Image() for lb in labels},
                "group": datasets.Value("string"),
                "source": datasets.Value("string"),
                "file": datasets.Value("string"),
            }
        )
    for col in extra_columns:
        features[col] = datasets.Value("string")
    return features


def missing_policy(labels: Sequence[str], missing: str | dict[str, str]) -> dict[str, str]:
    """The policy of every label, from one policy for all or a dict per label (``error`` for the rest)."""
    policy = (
        {lb: missing for lb in labels} if isinstance(missing, str) else {lb: missing.get(lb, "error") for lb in labels}
    )
    unknown = set(missing) - set(labels) if isinstance(missing, dict) else set()
    bad = {lb: p for lb, p in policy.items() if p not in MISSING_POLICIES}
    if unknown or bad:
        raise ValueError(
            f"missing_labels: unknown labels {sorted(unknown)} or policies {bad}; labels are "
            f"{list(labels)}, policies {', '.join(MISSING_POLICIES)}"
        )
    return policy


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


def _read_mask(
    source: Path | np.ndarray, name: str, size: tuple[int, int], report: DataReport, what: str = "mask"
) -> np.ndarray | None:
    try:
        m = mask_to_binary(read_image(source) if isinstance(source, Path) else source, name=name)
    except ValueError as exc:
        report.skip(name, f"invalid {what}: {exc}")
        return None
    if (m.shape[1], m.shape[0]) != size:
        report.skip(name, f"size mismatch ({what}): image {size[0]}x{size[1]}, mask {m.shape[1]}x{m.shape[0]}")
        return None
    return m


def _label_columns(
    c: Candidate, size: tuple[int, int], report: DataReport, policy: dict[str, str]
) -> dict[str, Any] | None:
    columns = {}
    for label, rule in policy.items():
        source = (c.label_masks or {}).get(label)
        what = f"'{label}' mask"
        if source is None:
            if rule == "error":
                report.skip(
                    c.image,
                    f"no {what}: pass missing_labels={{'{label}': 'empty'}} if the image has "
                    f"none, or 'ignore' to leave it out of the loss",
                )
                return None
            columns[mask_column(label)] = (
                None if rule == "ignore" else {"bytes": png_bytes(np.zeros(size[::-1], np.uint8)), "path": None}
            )
            continue
        name = str(source) if isinstance(source, Path) else f"{c.image} ({label})"
        m = _read_mask(source, name, size, report, what)
        if m is None:
            return None
        columns[mask_column(label)] = {"bytes": png_bytes(m), "path": None}
    return columns


def _row(c: Candidate, source: str, report: DataReport, policy: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Read and check one candidate; returns a dataset row, or None after recording why it was skipped."""
    image = _image_value(c.image, report)
    if image is None:
        return None
    image_value, size = image
    if policy is not None:
        masks = _label_columns(c, size, report, policy)
    elif c.mask is None:
        report.skip(c.image, "missing mask")
        return None
    else:
        m = _read_mask(c.mask, str(c.mask) if isinstance(c.mask, Path) else str(c.image), size, report)
        masks = None if m is None else {"mask": {"bytes": png_bytes(m), "path": None}}
    if masks is None:
        return None
    return {
        "image": image_value,
        **masks,
        "group": c.group,
        "source": c.source or source,
        "file": c.image.name,
        **c.extra,
    }


def collect(
    candidates: dict[str, Iterable[Candidate]], source: str, report: DataReport, policy: dict[str, str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Validated rows per split; every rejected candidate is recorded in ``report``. ``policy`` (label -> missing
    policy) makes the rows multi-label."""
    return {
        split: [row for row in (_row(c, source, report, policy) for c in items) if row is not None]
        for split, items in candidates.items()
    }


def to_dataset(
    rows: list[dict[str, Any]], extra_columns: Sequence[str] = (), labels: Sequence[str] | None = None
) -> datasets.Dataset:
    features = features_for(labels, extra_columns)
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
