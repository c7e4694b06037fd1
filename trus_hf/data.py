"""Labeled data as a `datasets.DatasetDict` with columns ``image`` (Image), ``mask`` (Image, values 0/1), ``group``,
``source`` and ``file``; group-aware splits and k-fold.

Sources (`load_dataset` picks by ``format="auto"``):

- ``folder``: ``images/`` and ``masks/`` paired by file stem (mask suffix configurable, e.g. ``_mask``); optional
  ``train/``, ``valid/``, ``test/`` subfolders become splits; root CSV files (e.g. ``manifest.csv``) provide
  ``group`` and any ``extra_columns`` keyed by file name or ID;
- ``coco``: COCO segmentation JSON as Roboflow/CVAT export it (polygons and RLE, several annotations per image merged,
  optional category filter), one ``_annotations.coco.json`` per split folder or a single JSON file;
- ``roboflow-masks``: Roboflow's semantic-mask export (``*_mask.png`` beside each image and ``_classes.csv``);
- ``yolo-seg``: YOLO segmentation labels (``images/`` + ``labels/*.txt`` with normalised polygons);
- ``imagefolder``: a folder with ``metadata.jsonl`` (``file_name``, ``mask_file_name``, ``group``), as
  ``trus-hf synth`` writes and ``datasets``' imagefolder reads;
- ``synthetic``: ``synthetic:N`` or ``synthetic:N:SIZE`` generates phantoms;
- ``hub``: a Hub dataset ID or a ``save_to_disk`` folder.

Every pair is validated (readable, sizes match, mask values {0,1} or {0,255}). With ``strict=True`` (default) any
problem raises one `ValueError` listing every offending file; with ``strict=False`` bad items are skipped and listed
in the returned `DataReport`. Nothing is dropped silently.

Example:
    >>> from trus_hf.data import load_dataset
    >>> ds = load_dataset("synthetic:4:64")
    >>> ds["train"].column_names
    ['image', 'mask', 'group', 'source', 'file']
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import datasets
import numpy as np
from PIL import Image

from .fileio import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, read_image
from .image_processing import TrusImageProcessor

__all__ = ["FEATURES", "FORMATS", "DataReport", "group_kfold", "group_train_test_split", "load_dataset",
           "load_dataset_with_report", "synthetic_dataset"]

logger = logging.getLogger(__name__)

FORMATS = ("auto", "folder", "coco", "roboflow-masks", "yolo-seg", "cvat-masks", "imagefolder", "synthetic", "hub")
FEATURES = datasets.Features({"image": datasets.Image(), "mask": datasets.Image(), "group": datasets.Value("string"),
                              "source": datasets.Value("string"), "file": datasets.Value("string")})
_SPLIT_NAMES = {"train": "train", "valid": "validation", "val": "validation", "validation": "validation",
                "test": "test"}
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


# ----------------------------------------------------------------------------------------------- pair validation
def _png_bytes(arr: np.ndarray) -> bytes:
    """Lossless PNG of a uint8/uint16 image or a 0/1 mask."""
    buf = io.BytesIO()
    Image.fromarray(arr if arr.dtype in (np.uint8, np.uint16) else arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _validated_row(image_path: Path, mask: np.ndarray | Path | None, group: str, source: str,
                   report: DataReport, extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Read and check one pair; returns a dataset row, or None after recording why it was skipped."""
    image_value: Any = str(image_path)
    if image_path.suffix.lower() in DICOM_EXTENSIONS:
        # datasets' Image feature cannot decode DICOM: store the decoded frame as a lossless (8/16-bit) PNG.
        try:
            arr = read_image(image_path)
        except ValueError as exc:
            report.skip(image_path, f"unreadable image: {exc}")
            return None
        size = (arr.shape[1], arr.shape[0])
        image_value = {"bytes": _png_bytes(arr), "path": None}
    else:
        try:
            with Image.open(image_path) as im:
                size = im.size  # header only: cheap; full decode happens when the dataset is used
                im.verify()
        except Exception as exc:
            report.skip(image_path, f"unreadable image: {exc.__class__.__name__}: {exc}")
            return None
    if mask is None:
        report.skip(image_path, "missing mask")
        return None
    mask_name = str(mask) if isinstance(mask, Path) else str(image_path)
    try:
        arr = read_image(mask) if isinstance(mask, Path) else mask
        m = TrusImageProcessor.mask_to_binary(arr, name=mask_name)
    except ValueError as exc:
        report.skip(mask_name, f"invalid mask: {exc}")
        return None
    if (m.shape[1], m.shape[0]) != size:
        report.skip(mask_name, f"size mismatch: image {size[0]}x{size[1]}, mask {m.shape[1]}x{m.shape[0]}")
        return None
    row = {"image": image_value, "mask": {"bytes": _png_bytes(m), "path": None}, "group": group,
           "source": source, "file": image_path.name}
    row.update(extra or {})
    return row


def _to_dataset(rows: list[dict[str, Any]], extra_columns: Sequence[str] = ()) -> datasets.Dataset:
    features = FEATURES.copy()
    for col in extra_columns:
        features[col] = datasets.Value("string")
    columns = {k: [r.get(k) for r in rows] for k in features}
    for col in extra_columns:
        columns[col] = [None if v is None else str(v) for v in columns[col]]
    return datasets.Dataset.from_dict(columns, features=features)


def _images_in(folder: Path) -> list[Path]:
    exts = IMAGE_EXTENSIONS + DICOM_EXTENSIONS
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))


def _root_tables(root: Path, columns: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per-stem values of ``columns`` from CSV/JSONL files at ``root`` (keyed by a file-name or ID column)."""
    wanted = set(columns)
    table: dict[str, dict[str, Any]] = {}
    files = sorted(root.glob("*.csv")) + sorted(root.glob("*.jsonl"))
    for f in files:
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


# ----------------------------------------------------------------------------------------------- loaders
def _split_dirs(root: Path, marker: str) -> dict[str, Path]:
    """Split subfolders (train/valid/test) that contain ``marker``; else the root as 'train'."""
    found = {}
    for name, split in _SPLIT_NAMES.items():
        if (root / name / marker).exists():
            found[split] = root / name
    return found or {"train": root}


def _load_folder(root: Path, report: DataReport, mask_suffix: str = "", images_dir: str = "images",
                 masks_dir: str = "masks", group_pattern: str | None = None, extra_columns: Sequence[str] = (),
                 source: str = "folder") -> dict[str, list[dict]]:
    splits = {}
    for split, sdir in _split_dirs(root, images_dir).items():
        if not (sdir / images_dir).is_dir():
            raise ValueError(f"{sdir}: expected an '{images_dir}/' folder (and '{masks_dir}/') for format 'folder'")
        masks = {}
        if (sdir / masks_dir).is_dir():
            for p in _images_in(sdir / masks_dir):
                stem = p.stem[: -len(mask_suffix)] if mask_suffix and p.stem.endswith(mask_suffix) else p.stem
                masks[stem] = p
        table = _root_tables(root, ["group", *extra_columns])
        if sdir != root:
            table.update(_root_tables(sdir, ["group", *extra_columns]))
        rows = []
        for img in _images_in(sdir / images_dir):
            info = table.get(img.stem, {})
            group = info.get("group") or _group_from(img.stem, group_pattern)
            row = _validated_row(img, masks.get(img.stem), str(group), source, report,
                                 {c: info.get(c) for c in extra_columns})
            if row is not None:
                rows.append(row)
        splits[split] = rows
    return splits


def _group_from(stem: str, pattern: str | None) -> str:
    if pattern:
        m = re.search(pattern, stem)
        if m:
            return m.group(1) if m.groups() else m.group(0)
    return stem


def _coco_masks(ann_file: Path, category_names: Sequence[str] | None, report: DataReport
                ) -> list[tuple[Path, np.ndarray | None]]:
    from pycocotools import mask as mask_utils

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
            if keep_ids is not None and a.get("category_id") not in keep_ids:
                continue
            seg = a.get("segmentation")
            if not seg:
                continue
            try:
                if isinstance(seg, list):  # polygons
                    polys = [p for p in seg if len(p) >= 6]
                    if not polys:
                        continue
                    rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
                elif isinstance(seg.get("counts"), list):  # uncompressed RLE
                    rle = mask_utils.frPyObjects(seg, h, w)
                else:  # compressed RLE
                    rle = {"size": seg["size"], "counts": seg["counts"].encode() if isinstance(seg["counts"], str)
                           else seg["counts"]}
                mask |= mask_utils.decode(rle).astype(np.uint8)
            except Exception as exc:
                report.skip(path, f"annotation {a.get('id')}: undecodable segmentation ({exc})")
        out.append((path, mask))
    return out


def _load_coco(root: Path, report: DataReport, categories: Sequence[str] | None = None,
               group_pattern: str | None = None) -> dict[str, list[dict]]:
    if root.is_file():
        ann_files = {"train": root}
    else:
        ann_files = {split: d / "_annotations.coco.json" for split, d in _split_dirs(root, "_annotations.coco.json").items()}
        if not any(f.is_file() for f in ann_files.values()):
            jsons = sorted(root.glob("*.json"))
            if len(jsons) != 1:
                raise ValueError(f"{root}: expected _annotations.coco.json (per split folder) or one COCO .json file, "
                                 f"found {[j.name for j in jsons]}")
            ann_files = {"train": jsons[0]}
    splits = {}
    for split, f in ann_files.items():
        rows = []
        for path, mask in _coco_masks(f, categories, report):
            if not path.is_file():
                report.skip(path, "image listed in the COCO file is missing")
                continue
            row = _validated_row(path, mask, _group_from(path.stem, group_pattern), "coco", report)
            if row is not None:
                rows.append(row)
        splits[split] = rows
    return splits


def _load_roboflow_masks(root: Path, report: DataReport, categories: Sequence[str] | None = None,
                         group_pattern: str | None = None) -> dict[str, list[dict]]:
    splits = {}
    for split, sdir in _split_dirs(root, "_classes.csv").items():
        classes_file = sdir / "_classes.csv"
        if not classes_file.is_file():
            raise ValueError(f"{sdir}: Roboflow mask export needs _classes.csv")
        with open(classes_file, newline="") as fh:
            rows_csv = list(csv.DictReader(fh))
        names = {int(r["Pixel Value"]): r[" Class"].strip() if " Class" in r else r.get("Class", "").strip()
                 for r in rows_csv}
        if categories:
            unknown = [c for c in categories if c not in names.values()]
            if unknown:
                raise ValueError(f"{classes_file}: classes {unknown} not found; available: {sorted(names.values())}")
            fg = [v for v, n in names.items() if n in categories]
        else:
            fg = [v for v, n in names.items() if v != 0 and n.lower() not in ("background", "_background_")]
        rows = []
        for img in _images_in(sdir):
            if img.stem.endswith("_mask"):
                continue
            mpath = sdir / f"{img.stem}_mask.png"
            mask = None
            if mpath.is_file():
                try:
                    raw = read_image(mpath)
                    raw = raw[..., 0] if raw.ndim == 3 else raw
                    mask = np.isin(raw, fg).astype(np.uint8)
                except ValueError as exc:
                    report.skip(mpath, str(exc))
                    continue
            row = _validated_row(img, mask, _group_from(img.stem, group_pattern), "roboflow-masks", report)
            if row is not None:
                rows.append(row)
        splits[split] = rows
    return splits


def _load_yolo_seg(root: Path, report: DataReport, categories: Sequence[str] | None = None,
                   group_pattern: str | None = None) -> dict[str, list[dict]]:
    import cv2

    names: list[str] = []
    for yaml_file in list(root.glob("*.yaml")) + list(root.glob("*.yml")):
        import yaml

        meta = yaml.safe_load(yaml_file.read_text()) or {}
        raw = meta.get("names", [])
        names = [raw[k] for k in sorted(raw)] if isinstance(raw, dict) else list(raw)
    keep = None
    if categories:
        unknown = [c for c in categories if c not in names]
        if unknown:
            raise ValueError(f"{root}: classes {unknown} not in data.yaml names {names}")
        keep = {names.index(c) for c in categories}
    splits = {}
    for split, sdir in _split_dirs(root, "images").items():
        rows = []
        for img in _images_in(sdir / "images"):
            label = sdir / "labels" / f"{img.stem}.txt"
            if not label.is_file():
                report.skip(img, "missing label file " + str(label))
                continue
            with Image.open(img) as im:
                w, h = im.size
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
            row = _validated_row(img, mask, _group_from(img.stem, group_pattern), "yolo-seg", report)
            if row is not None:
                rows.append(row)
        splits[split] = rows
    return splits


def _load_imagefolder(root: Path, report: DataReport, extra_columns: Sequence[str] = ()) -> dict[str, list[dict]]:
    meta = root / "metadata.jsonl"
    rows = []
    for ln, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            img = root / rec["file_name"]
            mask = root / rec["mask_file_name"] if rec.get("mask_file_name") else None
        except (json.JSONDecodeError, KeyError) as exc:
            report.skip(f"{meta}:{ln}", f"bad metadata line ({exc})")
            continue
        if not img.is_file():
            report.skip(img, "listed in metadata.jsonl but missing")
            continue
        if mask is not None and not mask.is_file():
            report.skip(mask, "mask listed in metadata.jsonl but missing")
            continue
        row = _validated_row(img, mask, str(rec.get("group", img.stem)), str(rec.get("source", "imagefolder")),
                             report, {c: rec.get(c) for c in extra_columns})
        if row is not None:
            rows.append(row)
    return {"train": rows}


def synthetic_dataset(n: int, size: int = 256, seed: int = 0, config: Any = None) -> datasets.Dataset:
    """``n`` phantoms (seeds ``seed`` .. ``seed + n - 1``) as a Dataset with the standard columns."""
    from .synthetic import generate_phantom

    rows = []
    for s in range(seed, seed + n):
        ph = generate_phantom(s, (size, size), config)
        rows.append({"image": {"bytes": _png_bytes(ph.image), "path": None},
                     "mask": {"bytes": _png_bytes(ph.lesion_mask), "path": None},
                     "group": f"case_{s:05d}", "source": "synthetic", "file": f"phantom_{s:05d}.png"})
    return _to_dataset(rows)


def _load_synthetic(spec: str) -> datasets.DatasetDict:
    parts = spec.split(":")
    try:
        n = int(parts[1])
        size = int(parts[2]) if len(parts) > 2 else 256
        seed = int(parts[3]) if len(parts) > 3 else 0
    except (IndexError, ValueError) as exc:
        raise ValueError(f"synthetic source must look like 'synthetic:N[:SIZE[:SEED]]', got {spec!r}") from exc
    return datasets.DatasetDict({"train": synthetic_dataset(n, size, seed)})


def _load_hub(source: str, revision: str | None = None) -> datasets.DatasetDict:
    path = Path(source)
    try:
        if path.exists():
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(source, revision=revision)
    except Exception as exc:
        raise ValueError(f"cannot load dataset {source!r}: {exc.__class__.__name__}: {exc}") from exc
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    for split, ds in loaded.items():
        missing = {"image", "mask"} - set(ds.column_names)
        if missing:
            raise ValueError(f"dataset {source!r} split {split!r} lacks columns {sorted(missing)}; has {ds.column_names}")
        if "group" not in ds.column_names:
            ds = ds.add_column("group", [f"{split}_{i}" for i in range(len(ds))])
        if "source" not in ds.column_names:
            ds = ds.add_column("source", [source] * len(ds))
        loaded[split] = ds
    return loaded


def _detect_format(source: str) -> str:
    if source.startswith("synthetic:"):
        return "synthetic"
    path = Path(source)
    if not path.exists():
        return "hub"
    if path.is_file() and path.suffix == ".json":
        return "coco"
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return "hub"
    if (path / "metadata.jsonl").exists():
        return "imagefolder"
    if list(path.glob("**/_annotations.coco.json")) or (len(list(path.glob("*.json"))) == 1 and not (path / "images").is_dir()):
        return "coco"
    if list(path.glob("**/_classes.csv")):
        return "roboflow-masks"
    if list(path.glob("**/labels/*.txt")):
        return "yolo-seg"
    if list(path.glob("**/images")):
        return "folder"
    raise ValueError(f"{source}: cannot tell the dataset format; pass one of {', '.join(FORMATS[1:])}")


def load_dataset_with_report(source: str | Path, format: str = "auto", mask_suffix: str = "",
                             categories: Sequence[str] | None = None, group_pattern: str | None = None,
                             extra_columns: Sequence[str] = (), revision: str | None = None
                             ) -> tuple[datasets.DatasetDict, DataReport]:
    """Load ``source`` into a DatasetDict and report what was skipped and why (see the module docstring)."""
    source = str(source)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; valid: {', '.join(FORMATS)}")
    fmt = _detect_format(source) if format == "auto" else format
    report = DataReport()
    if fmt == "synthetic":
        dsd = _load_synthetic(source)
    elif fmt == "hub":
        dsd = _load_hub(source, revision)
    else:
        root = Path(source)
        if not root.exists():
            raise ValueError(f"{root}: no such file or folder")
        if fmt in ("folder", "cvat-masks"):
            # CVAT's "Segmentation mask" export is a folder of images and same-stem mask PNGs (SegmentationClass/).
            masks_dir = "SegmentationClass" if fmt == "cvat-masks" and (root / "SegmentationClass").is_dir() else "masks"
            images_dir = "JPEGImages" if fmt == "cvat-masks" and (root / "JPEGImages").is_dir() else "images"
            splits = _load_folder(root, report, mask_suffix, images_dir, masks_dir, group_pattern, extra_columns,
                                  source=fmt)
        elif fmt == "coco":
            splits = _load_coco(root, report, categories, group_pattern)
        elif fmt == "roboflow-masks":
            splits = _load_roboflow_masks(root, report, categories, group_pattern)
        elif fmt == "yolo-seg":
            splits = _load_yolo_seg(root, report, categories, group_pattern)
        else:
            splits = _load_imagefolder(root, report, extra_columns)
        empty = [s for s, rows in splits.items() if not rows]
        if empty and not report.skipped:
            raise ValueError(f"{root}: no images found for split(s) {empty} (format {fmt})")
        dsd = datasets.DatasetDict({s: _to_dataset(rows, extra_columns) for s, rows in splits.items() if rows})
    report.loaded = {s: len(d) for s, d in dsd.items()}
    return dsd, report


def load_dataset(source: str | Path, format: str = "auto", strict: bool = True, **kwargs) -> datasets.DatasetDict:
    """Load ``source`` (see the module docstring). ``strict=True`` raises on any invalid item, listing them all;
    ``strict=False`` skips them with a warning that lists each one and its reason."""
    dsd, report = load_dataset_with_report(source, format, **kwargs)
    if report.skipped:
        msg = f"{source}: {len(report.skipped)} item(s) invalid:\n" + "\n".join(f"  {f}: {r}" for f, r in report.skipped)
        if strict:
            raise ValueError(msg + "\n(pass strict=False / --skip-invalid to skip them)")
        logger.warning(msg)
    if not dsd:
        raise ValueError(f"{source}: no valid image/mask pairs")
    return dsd


# ----------------------------------------------------------------------------------------------- splits
def group_train_test_split(ds: datasets.Dataset, test_size: float = 0.2, seed: int = 0,
                           group_column: str = "group") -> datasets.DatasetDict:
    """Split so that no group (patient, case) appears on both sides (scikit-learn's GroupShuffleSplit)."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = ds[group_column]
    if len(set(groups)) < 2:
        raise ValueError(f"need at least 2 distinct groups to split, got {len(set(groups))}")
    train_idx, test_idx = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
                               .split(np.zeros(len(groups)), groups=groups))
    return datasets.DatasetDict({"train": ds.select(sorted(train_idx)), "test": ds.select(sorted(test_idx))})


def group_kfold(ds: datasets.Dataset, k: int = 5, seed: int = 0, group_column: str = "group",
                fold_column: str | None = None) -> list[tuple[list[int], list[int]]]:
    """K (train, validation) index lists. With ``fold_column`` (e.g. BUS-BRA's ``kFold``) the dataset's own folds
    are used (fold f = rows whose value is f); otherwise scikit-learn's GroupKFold with shuffling, by group."""
    if fold_column is not None:
        if fold_column not in ds.column_names:
            raise ValueError(f"fold column {fold_column!r} not in dataset columns {ds.column_names}")
        values = [str(v) for v in ds[fold_column]]
        folds = sorted(set(values), key=lambda v: (len(v), v))
        return [([i for i, v in enumerate(values) if v != f], [i for i, v in enumerate(values) if v == f])
                for f in folds]
    from sklearn.model_selection import GroupKFold

    groups = ds[group_column]
    if len(set(groups)) < k:
        raise ValueError(f"{k}-fold needs at least {k} distinct groups, got {len(set(groups))}")
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(sorted(tr.tolist()), sorted(va.tolist())) for tr, va in splitter.split(np.zeros(len(groups)), groups=groups)]
