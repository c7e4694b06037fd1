"""The labeling round trip: raw scanner exports -> anonymised PNGs -> (label in Roboflow/CVAT) -> validated dataset,
and model predictions back out as COCO pre-annotations.

Patient safety rules, enforced here and tested:
- no DICOM tag value reaches any output: file names, groups and sources are salted SHA-256 pseudonyms (of PatientID,
  or of the folder when there is none, and of the source path); the mapping back is never written;
- burned-in text and UI outside the ultrasound region are cropped away (the processor's ROI detection);
- nothing is overwritten without ``overwrite=True``, and every skipped file is listed with its reason.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .arrays import to_gray_float
from .fileio import (
    DICOM_EXTENSIONS,
    IMAGE_EXTENSIONS,
    atomic_file,
    read_dicom_frames,
    read_image,
    remove_stale_temporaries,
    write_csv,
    write_json,
    write_png,
)
from .image_processing import detect_ultrasound_roi
from .video import VIDEO_EXTENSIONS, iter_video

__all__ = ["PrepareReport", "VIDEO_EXTENSIONS", "export_for_labeling", "import_labels", "prepare_frames"]

logger = logging.getLogger(__name__)

MANIFEST_FIELDS = [
    "file",
    "group",
    "frame",
    "source",
    "source_kind",
    "orig_width",
    "orig_height",
    "crop_x0",
    "crop_y0",
    "crop_x1",
    "crop_y1",
    "phash",
]


@dataclass
class PrepareReport:
    written: int = 0
    sources: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path under RAW_DIR, reason): console only
    skipped_ids: list[tuple[str, str]] = field(default_factory=list)  # (source pseudonym, reason): written to disk
    duplicates: list[tuple[str, str, int]] = field(default_factory=list)
    dropped_duplicates: int = 0

    def summary(self) -> str:
        lines = [
            f"{self.written} frame(s) written from {self.sources} source(s); "
            f"{len(self.duplicates)} near-duplicate pair(s) found, {self.dropped_duplicates} dropped; "
            f"{len(self.skipped)} source(s) skipped"
        ]
        lines += [f"  skipped {f}: {r}" for f, r in self.skipped]
        lines += [f"  near-duplicate: {a} ~ {b} (phash distance {d})" for a, b, d in self.duplicates[:50]]
        return "\n".join(lines)


def _pseudonym(value: str, salt: str, n: int = 12) -> str:
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:n]


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    gray = to_gray_float(frame)
    lo, hi = np.percentile(gray, [0.5, 99.5]) if frame.dtype != np.bool_ else (0.0, 1.0)
    return (np.clip((gray - lo) / max(hi - lo, 1e-6), 0, 1) * 255 + 0.5).astype(np.uint8)


def _video_frames(path: Path, every: int, on_change: float) -> Iterator[tuple[int, np.ndarray]]:
    """Every ``every``-th frame of a video, and with ``on_change`` only frames that differ from the last kept one."""
    last = None
    for index, rgb in iter_video(path):
        keep = index % max(1, every) == 0
        if keep and on_change > 0:
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
            keep = last is None or float(np.abs(gray - last).mean()) > on_change
            if keep:
                last = gray
        if keep:
            yield index, rgb


def _frames_of(
    path: Path, root: Path, salt: str, every: int, on_change: float
) -> tuple[str, str, Iterator[tuple[int, np.ndarray]]]:
    """(group, kind, frames) of one source file; DICOM tags are read for the group pseudonym only."""
    suffix = path.suffix.lower()
    folder_group = _pseudonym(str(path.parent.relative_to(root)), salt)
    if suffix in VIDEO_EXTENSIONS:
        return folder_group, "video", _video_frames(path, every, on_change)
    with open(path, "rb") as f:
        head = f.read(132)
    if suffix in DICOM_EXTENSIONS or head[128:132] == b"DICM":
        frames, ds = read_dicom_frames(path)
        patient = str(ds.get("PatientID", "") or "")
        group = _pseudonym(f"patient:{patient}", salt) if patient else folder_group
        return group, "dicom", iter(enumerate(frames))
    return folder_group, "image", iter([(0, read_image(path))])


def prepare_frames(
    raw_dir: str | Path,
    out_dir: str | Path,
    every: int = 1,
    on_change: float = 0.0,
    salt: str = "trus-hf",
    crop: bool = True,
    drop_duplicates: bool = False,
    duplicate_distance: int = 4,
    overwrite: bool = False,
    resume: bool = False,
) -> PrepareReport:
    """Convert every DICOM, image and video under ``raw_dir`` into anonymised, cropped PNGs in ``out_dir/images``
    with ``out_dir/manifest.csv``; near-duplicates (perceptual hash) are reported, and dropped if asked."""
    import imagehash
    from PIL import Image

    from .progress import progress

    raw, out = Path(raw_dir), Path(out_dir)
    if not raw.is_dir():
        raise ValueError(f"{raw}: not a folder")
    manifest_path = out / "manifest.csv"
    existing: list[dict[str, str]] = []
    if manifest_path.exists():
        if resume:
            remove_stale_temporaries(out)
            with open(manifest_path, newline="") as f:
                existing = list(csv.DictReader(f))
        elif not overwrite:
            raise FileExistsError(
                f"{out} already holds a prepared dataset; pass --resume to continue it or --overwrite to replace it"
            )
        else:
            shutil.rmtree(out / "images", ignore_errors=True)
            manifest_path.unlink()
    (out / "images").mkdir(parents=True, exist_ok=True)
    done_sources = {row["source"] for row in existing}
    hashes = [(row["file"], imagehash.hex_to_hash(row["phash"])) for row in existing if row.get("phash")]
    exts = IMAGE_EXTENSIONS + DICOM_EXTENSIONS + VIDEO_EXTENSIONS
    files = sorted(
        p
        for p in raw.rglob("*")
        if p.is_file() and not p.name.startswith(".") and (p.suffix.lower() in exts or p.suffix == "")
    )
    report = PrepareReport()
    rows = list(existing)
    for path in progress(files, desc="preparing", unit="file"):
        source = _pseudonym(str(path.relative_to(raw)), salt)
        if source in done_sources:
            continue
        try:
            group, kind, frames = _frames_of(path, raw, salt, every, on_change)
            n_before = report.written
            for index, frame in frames:
                img = _to_uint8(frame)
                if img.ndim == 3 and (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all():
                    img = img[..., 0]
                h, w = img.shape[:2]
                x0, y0, x1, y1 = detect_ultrasound_roi(to_gray_float(img)) if crop else (0, 0, w, h)
                img = np.ascontiguousarray(img[y0:y1, x0:x1])
                ph = imagehash.phash(Image.fromarray(img))
                name = f"{group}_{source[:8]}_f{index:04d}.png"
                near = next(((f, int(ph - other)) for f, other in hashes if ph - other <= duplicate_distance), None)
                if near is not None:
                    report.duplicates.append((name, near[0], near[1]))
                    if drop_duplicates:
                        report.dropped_duplicates += 1
                        continue
                target = out / "images" / name
                if target.exists() and not overwrite:
                    raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
                write_png(target, img)
                hashes.append((name, ph))
                rows.append(
                    {
                        "file": f"images/{name}",
                        "group": group,
                        "frame": index,
                        "source": source,
                        "source_kind": kind,
                        "orig_width": w,
                        "orig_height": h,
                        "crop_x0": x0,
                        "crop_y0": y0,
                        "crop_x1": x1,
                        "crop_y1": y1,
                        "phash": str(ph),
                    }
                )
                report.written += 1
            if report.written == n_before and not (drop_duplicates and report.dropped_duplicates):
                report.skipped.append((str(path.relative_to(raw)), "no frames selected"))
                report.skipped_ids.append((source, "no frames selected"))
            report.sources += 1
        except ValueError as exc:
            reason = str(exc).replace(str(path), path.name)
            report.skipped.append((str(path.relative_to(raw)), reason))
            # Path parts can be identifying (folders named after patients): the report on disk names the pseudonym.
            report.skipped_ids.append((source, reason.replace(path.name, f"<{source}{path.suffix.lower()}>")))
        # The manifest is rewritten atomically after each source: a killed run resumes where it stopped.
        write_csv(manifest_path, rows, MANIFEST_FIELDS)
    write_json(
        out / "prepare_report.json",
        {
            "written": report.written,
            "sources": report.sources,
            "skipped": [{"source": f, "reason": r} for f, r in report.skipped_ids],
            "duplicates": [{"file": a, "like": b, "distance": d} for a, b, d in report.duplicates],
        },
    )
    return report


# ------------------------------------------------------------------------------------------------ labels back in
def _validation(dsd, report) -> dict[str, Any]:
    import imagehash
    from PIL import Image

    out: dict[str, Any] = {
        "unlabeled_images": [f for f, r in report.skipped if "missing mask" in r],
        "size_mismatches": [f for f, r in report.skipped if "size mismatch" in r],
        "other_problems": [
            {"file": f, "reason": r} for f, r in report.skipped if "missing mask" not in r and "size mismatch" not in r
        ],
        "empty_masks": [],
        "masks_outside_ultrasound": [],
        "duplicates_across_splits": [],
    }
    hashes: dict[str, list[tuple[str, Any]]] = {}
    coverage: dict[str, Any] = {}
    out["not_annotated"] = []
    for split, ds in dsd.items():
        columns = ["mask"] if "mask" in ds.column_names else [c for c in ds.column_names if c.startswith("mask_")]
        fractions: dict[str, list[float]] = {c: [] for c in columns}
        for item in ds:
            img = np.asarray(item["image"])
            for column in columns:
                tag = "" if column == "mask" else f" ({column[len('mask_') :]})"
                if item[column] is None:
                    out["not_annotated"].append(f"{split}/{item['file']}{tag}")
                    continue
                mask = np.asarray(item[column]) > 0
                fractions[column].append(float(mask.mean()))
                if not mask.any():
                    out["empty_masks"].append(f"{split}/{item['file']}{tag}")
                else:
                    outside = (to_gray_float(img)[mask] < 0.02).mean()
                    if outside > 0.5:
                        out["masks_outside_ultrasound"].append(
                            f"{split}/{item['file']}{tag} ({outside:.0%} of the mask on black pixels)"
                        )
            hashes.setdefault(split, []).append((item["file"], imagehash.phash(Image.fromarray(_to_uint8(img)))))
        stats = {
            c: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}
            for c, v in fractions.items()
            if v
        }
        coverage[split] = stats["mask"] if columns == ["mask"] else stats
    splits = list(hashes)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            for fa, ha in hashes[a]:
                for fb, hb in hashes[b]:
                    if ha - hb <= 4:
                        out["duplicates_across_splits"].append(f"{a}/{fa} ~ {b}/{fb}")
    out["mask_coverage"] = coverage
    return out


def import_labels(
    export: str | Path,
    out_dir: str | Path,
    format: str = "auto",
    categories: Sequence[str] | None = None,
    push_to_hub: str | None = None,
    test_size: float = 0.0,
    seed: int = 0,
    overwrite: bool = False,
    mask_suffix: str = "",
    labels: Sequence[str] | None = None,
    label_map: dict[str, Sequence[str]] | None = None,
    label_values: dict[str, Sequence[int]] | None = None,
    missing_labels: str | dict[str, str] = "error",
) -> str:
    """Labeling export -> ``out_dir/dataset`` (``save_to_disk``), ``README.md`` dataset card and
    ``validation_report.json``; optionally pushed to the Hub as a dataset. Returns a printable summary.

    Several ``labels``: one ``mask_<label>`` column each; the card records which categories became which label and
    what a label missing from an image means (see `trus_hf.data.load_dataset_with_report`)."""
    import datasets

    from .data import group_train_test_split, load_dataset_with_report

    out = Path(out_dir)
    if (out / "dataset").exists() and not overwrite:
        raise FileExistsError(f"{out / 'dataset'} exists; pass --overwrite to replace it")
    multi = {}
    if labels:
        multi = {
            "labels": list(labels),
            "label_map": label_map,
            "label_values": label_values,
            "missing_labels": missing_labels,
        }
    dsd, report = load_dataset_with_report(
        export, format=format, categories=categories, mask_suffix=mask_suffix, **multi
    )
    if not dsd:
        raise ValueError(f"{export}: no valid image/mask pairs; problems:\n{report.summary()}")
    if test_size > 0 and "test" not in dsd:
        split = group_train_test_split(dsd["train"], test_size=test_size, seed=seed)
        dsd = datasets.DatasetDict(
            {**{k: v for k, v in dsd.items() if k != "train"}, "train": split["train"], "test": split["test"]}
        )
    validation = _validation(dsd, report)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "dataset").exists():
        shutil.rmtree(out / "dataset")
    dsd.save_to_disk(str(out / "dataset"))
    counts = {s: len(d) for s, d in dsd.items()}
    groups = {s: len(set(d["group"])) for s, d in dsd.items()}
    card = [
        "---",
        "task_categories:",
        "- image-segmentation",
        "tags:",
        "- medical-imaging",
        "- ultrasound",
        "- trus",
        "---",
        "",
        f"# {Path(str(export)).name} (imported by trus-hf)",
        "",
        "| split | images | groups | mean mask coverage |",
        "|---|---|---|---|",
    ]

    def coverage(split: str) -> str:
        c = validation["mask_coverage"][split]
        return f"{c['mean']:.2%}" if "mean" in c else ", ".join(f"{k[5:]} {v['mean']:.2%}" for k, v in c.items())

    card += [f"| {s} | {counts[s]} | {groups[s]} | {coverage(s)} |" for s in counts]
    if labels:
        policy = missing_labels if isinstance(missing_labels, dict) else {lb: missing_labels for lb in labels}
        card += ["", "## Labels", "", "| label | column | from | not annotated on an image |", "|---|---|---|---|"]
        for lb in labels:
            source = (
                f"pixel values {list(label_values[lb])}"
                if label_values
                else f"categories {list((label_map or {}).get(lb, [lb]))}"
            )
            rule = {"error": "refused", "ignore": "left out of the loss (None)", "empty": "an empty mask"}.get(
                policy.get(lb, "error"), policy.get(lb, "error")
            )
            card.append(f"| {lb} | `mask_{lb}` | {source} | {rule} |")
        columns = ", ".join(f"`mask_{lb}` (0/1, or None where not annotated)" for lb in labels)
    else:
        columns = "`mask` (0/1)"
    card += [
        "",
        f"Columns: `image`, {columns}, `group` (patient or case; splits never share a group), `source`, `file`.",
        "",
        "## Validation",
        "",
    ]
    for key in (
        "unlabeled_images",
        "not_annotated",
        "empty_masks",
        "masks_outside_ultrasound",
        "duplicates_across_splits",
        "size_mismatches",
        "other_problems",
    ):
        card.append(f"- {key.replace('_', ' ')}: {len(validation[key])}")
    with atomic_file(out / "README.md") as tmp:
        tmp.write_text("\n".join(card) + "\n")
    write_json(out / "validation_report.json", validation)
    if push_to_hub:
        dsd.push_to_hub(push_to_hub)
        from huggingface_hub import HfApi

        HfApi().upload_file(
            path_or_fileobj=str(out / "README.md"), path_in_repo="README.md", repo_id=push_to_hub, repo_type="dataset"
        )
    lines = [f"dataset: {out / 'dataset'} {counts}", f"groups: {groups}"]
    lines += [f"{k.replace('_', ' ')}: {len(v)}" for k, v in validation.items() if isinstance(v, list)]
    lines += [f"  {f}: {r}" for f, r in report.skipped]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ model-assisted
def _polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer boundaries as COCO polygons that rasterise back onto the same pixels: traced on a 2x upsampled mask so
    the outline runs along pixel edges, not pixel centres (which would drop half of every boundary pixel)."""
    up = cv2.resize(mask.astype(np.uint8), (mask.shape[1] * 2, mask.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.5, True)
        if len(c) >= 3:
            polys.append([round((float(v) + 0.5) / 2, 2) for v in c.reshape(-1)])
    return polys


def export_for_labeling(
    model: str | Path,
    images: str | Path,
    out_dir: str | Path,
    threshold: float | None = None,
    overwrite: bool = False,
    category: str = "lesion",
) -> Path:
    """Predict every image and write it with ``_annotations.coco.json`` (polygons) that Roboflow and CVAT import as
    pre-annotations."""
    from .pipeline import SegmentationPipeline
    from .progress import progress

    out = Path(out_dir)
    ann_path = out / "_annotations.coco.json"
    if ann_path.exists() and not overwrite:
        raise FileExistsError(f"{ann_path} exists; pass --overwrite to replace it")
    src = Path(images)
    files = (
        [src]
        if src.is_file()
        else sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    )
    if not files:
        raise ValueError(f"{src}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    pipe = SegmentationPipeline.from_pretrained(model, threshold=threshold)
    out.mkdir(parents=True, exist_ok=True)
    coco: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": category, "supercategory": "none"}],
    }
    for i, path in enumerate(progress(files, desc="pre-annotating", unit="image")):
        img = read_image(path)
        result = pipe(img)
        name = f"{i:05d}_{path.stem}.png"
        write_png(out / name, img)
        h, w = img.shape[:2]
        coco["images"].append({"id": i, "file_name": name, "height": h, "width": w})
        n, labels, stats, _ = cv2.connectedComponentsWithStats(result.mask, connectivity=8)
        for k in range(1, n):
            polys = _polygons(labels == k)
            if not polys:
                continue
            x, y, bw, bh, area = (int(v) for v in stats[k])
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "segmentation": polys,
                    "area": area,
                    "bbox": [x, y, bw, bh],
                    "iscrowd": 0,
                }
            )
    write_json(ann_path, coco, indent=None)
    return ann_path
