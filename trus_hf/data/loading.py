"""`load_dataset`: any supported source -> a validated `datasets.DatasetDict` (format detection, the loader of that
format, the shared collector, the report)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets

from .coco import coco_candidates
from .collect import DataReport, collect, missing_policy, to_dataset
from .folder import cvat_candidates, folder_candidates
from .imagefolder import imagefolder_candidates
from .roboflow import roboflow_mask_candidates
from .sources import load_hub, load_synthetic
from .yolo import yolo_seg_candidates

__all__ = ["FORMATS", "load_dataset", "load_dataset_with_report", "parse_label_map", "parse_missing_labels"]

logger = logging.getLogger(__name__)

FORMATS = ("auto", "folder", "coco", "roboflow-masks", "yolo-seg", "cvat-masks", "imagefolder", "synthetic", "hub")

#: Each file-based format: its loader and the options of `load_dataset_with_report` it takes.
_FOLDER = ("mask_suffix", "group_pattern", "extra_columns", "labels", "label_values")
_EXPORT = ("categories", "group_pattern", "labels", "label_map")
_LOADERS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "folder": (folder_candidates, _FOLDER),
    "cvat-masks": (cvat_candidates, _FOLDER),
    "coco": (coco_candidates, _EXPORT),
    "roboflow-masks": (roboflow_mask_candidates, _EXPORT),
    "yolo-seg": (yolo_seg_candidates, _EXPORT),
    "imagefolder": (imagefolder_candidates, ("extra_columns", "labels")),
}


def parse_label_map(text: str | None) -> dict[str, list[str]] | None:
    """``"gland=prostate;lesion=tumor,pca"`` (the command line's form) -> ``{"gland": ["prostate"], ...}``."""
    if not text:
        return None
    out = {}
    for part in text.split(";"):
        label, _, names = part.partition("=")
        if not label.strip() or not names.strip():
            raise ValueError(f"label map: expected 'label=category[,category...]' parts separated by ';', got {part!r}")
        out[label.strip()] = [n.strip() for n in names.split(",") if n.strip()]
    return out


def parse_missing_labels(text: str) -> str | dict[str, str]:
    """``"ignore"`` or ``"lesion=empty,gland=ignore"`` (the command line's form) -> a policy or a dict per label."""
    if "=" not in text:
        return text.strip()
    out = {}
    for part in text.split(","):
        label, _, policy = part.partition("=")
        out[label.strip()] = policy.strip()
    return out


def _detect_format(source: str) -> str:
    if source.startswith("synthetic:"):
        return "synthetic"
    path = Path(source)
    if not path.exists():
        if source.startswith(("/", ".", "~")):
            raise ValueError(f"{source}: no such file or folder")
        return "hub"
    if path.is_file() and path.suffix == ".json":
        return "coco"
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return "hub"
    if (path / "metadata.jsonl").exists():
        return "imagefolder"
    if list(path.glob("**/_annotations.coco.json")) or (
        len(list(path.glob("*.json"))) == 1 and not (path / "images").is_dir()
    ):
        return "coco"
    if list(path.glob("**/_classes.csv")):
        return "roboflow-masks"
    if list(path.glob("**/labels/*.txt")):
        return "yolo-seg"
    if list(path.glob("**/images")):
        return "folder"
    raise ValueError(f"{source}: cannot tell the dataset format; pass one of {', '.join(FORMATS[1:])}")


def load_dataset_with_report(
    source: str | Path,
    format: str = "auto",
    mask_suffix: str = "",
    categories: Sequence[str] | None = None,
    group_pattern: str | None = None,
    extra_columns: Sequence[str] = (),
    revision: str | None = None,
    labels: Sequence[str] | None = None,
    label_map: dict[str, Sequence[str]] | None = None,
    label_values: dict[str, Sequence[int]] | None = None,
    missing_labels: str | dict[str, str] = "error",
) -> tuple[datasets.DatasetDict, DataReport]:
    """Load ``source`` into a DatasetDict and report what was skipped and why (see `trus_hf.data`).

    With ``labels`` the dataset has one ``mask_<label>`` column per label: ``label_map`` names the categories or
    classes of each label in COCO, Roboflow and YOLO exports (default: the one of the same name), ``label_values``
    the pixel values of each label in indexed masks (folder format); ``missing_labels`` says what a label without
    any annotation on an image means (``error``, ``ignore``, ``empty``; one policy or a dict per label).
    """
    source = str(source)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; valid: {', '.join(FORMATS)}")
    labels = list(labels) if labels else (list(label_values) if label_values else None)
    fmt = _detect_format(source) if format == "auto" else format
    report = DataReport()
    if fmt == "synthetic":
        dsd = load_synthetic(source, labels)
    elif fmt == "hub":
        dsd = load_hub(source, revision, labels)
    else:
        root = Path(source)
        if not root.exists():
            raise ValueError(f"{root}: no such file or folder")
        loader, takes = _LOADERS[fmt]
        options = {
            "mask_suffix": mask_suffix,
            "categories": categories,
            "group_pattern": group_pattern,
            "extra_columns": extra_columns,
            "labels": labels,
            "label_map": label_map,
            "label_values": label_values,
        }
        policy = missing_policy(labels, missing_labels) if labels else None
        splits = collect(loader(root, report, **{k: options[k] for k in takes}), fmt, report, policy)
        empty = [s for s, rows in splits.items() if not rows]
        if empty and not report.skipped:
            raise ValueError(f"{root}: no images found for split(s) {empty} (format {fmt})")
        dsd = datasets.DatasetDict({s: to_dataset(rows, extra_columns, labels) for s, rows in splits.items() if rows})
    report.loaded = {s: len(d) for s, d in dsd.items()}
    return dsd, report


def load_dataset(source: str | Path, format: str = "auto", strict: bool = True, **kwargs) -> datasets.DatasetDict:
    """Load ``source`` (see `trus_hf.data`). ``strict=True`` raises on any invalid item, listing them all;
    ``strict=False`` skips them with a warning that lists each one and its reason."""
    dsd, report = load_dataset_with_report(source, format, **kwargs)
    if report.skipped:
        msg = f"{source}: {len(report.skipped)} item(s) invalid:\n" + "\n".join(
            f"  {f}: {r}" for f, r in report.skipped
        )
        if strict:
            raise ValueError(msg + "\n(pass strict=False / --skip-invalid to skip them)")
        logger.warning(msg)
    if not dsd:
        raise ValueError(f"{source}: no valid image/mask pairs")
    return dsd
