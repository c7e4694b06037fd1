"""Many frames at once: gather images (files or zip archives, bounded), pair optional masks by file name, segment them
through the pipeline, and package the masks, overlays and a CSV of per-image metrics; summarise with bootstrap
intervals, worst frames first.

Example:
    >>> import numpy as np
    >>> from trus_hf.batch import BatchItem, summarize_batch
    >>> rows = [{"file": f"{i}.png", "label": "lesion", "iou": v, "dice": v} for i, v in enumerate((0.2, 0.9, 0.6))]
    >>> summarize_batch(rows)["worst"][0]
    '0.png'
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .arrays import MAX_PIXELS, mask_to_binary
from .fileio import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, read_image, write_csv
from .visualization import overlay

__all__ = [
    "BatchItem",
    "BatchLimits",
    "gather_batch",
    "segment_batch",
    "segment_cine",
    "summarize_batch",
    "write_batch_outputs",
]

_IMAGE_EXTS = IMAGE_EXTENSIONS + DICOM_EXTENSIONS


@dataclass
class BatchLimits:
    """What one batch may hold: frames, bytes read (archives uncompressed), pixels per frame."""

    max_frames: int = 200
    max_bytes: int = 500 * 2**20
    max_pixels: int = MAX_PIXELS


@dataclass
class BatchItem:
    """A frame and its ground truth: a mask of the primary label, a dict per label, or None."""

    name: str
    image: np.ndarray
    mask: np.ndarray | dict[str, np.ndarray] | None = None


def _mask_key(name: str, labels: Sequence[str]) -> tuple[str, str | None]:
    """(frame stem, label) of a mask file name: ``frame7_gland.png`` is frame7's gland, ``frame7.png`` and
    ``frame7_mask.png`` are frame7's primary label (None)."""
    stem = Path(name).stem
    for label in labels:
        if stem.endswith(f"_{label}"):
            return stem[: -len(label) - 1], label
    for suffix in ("_mask", "-mask", "_label", "_gt"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)], None
    return stem, None


def _members(path: Path, limits: BatchLimits, budget: list[int]) -> list[tuple[str, bytes | Path]]:
    """(name, content or file) of an uploaded file: the file itself, or every image inside a zip archive."""
    if path.suffix.lower() != ".zip":
        budget[0] -= path.stat().st_size
        return [(path.name, path)]
    try:
        with zipfile.ZipFile(path) as z:
            infos = [
                i
                for i in z.infolist()
                if not i.is_dir()
                and Path(i.filename).suffix.lower() in _IMAGE_EXTS
                and not Path(i.filename).name.startswith((".", "__MACOSX"))
            ]
            out = []
            for info in infos:
                budget[0] -= info.file_size
                if budget[0] < 0:
                    raise ValueError(f"{path.name}: the archive unpacks to more than {limits.max_bytes // 2**20} MB")
                try:
                    out.append((Path(info.filename).name, z.read(info)))  # the name only: no paths from archives
                except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                    raise ValueError(f"{path.name}: member {Path(info.filename).name} is corrupt ({exc})") from exc
            return out
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path.name}: not a readable zip archive ({exc})") from exc


def _decode(name: str, content: bytes | Path, limits: BatchLimits) -> np.ndarray:
    if isinstance(content, Path):
        return read_image(content, max_pixels=limits.max_pixels)
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as tmp:
        tmp.write(content)
        tmp.flush()
        return read_image(tmp.name, max_pixels=limits.max_pixels)


def gather_batch(
    images: Sequence[str | Path],
    masks: Sequence[str | Path] = (),
    limits: BatchLimits | None = None,
    labels: Sequence[str] = ("lesion",),
    primary: str | None = None,
) -> tuple[list[BatchItem], list[str]]:
    """The frames of uploaded files and zip archives, each with its ground truth when a mask has the same file stem
    (``_mask`` for the primary label, ``_<label>`` for any label of ``labels``), and the problems found (unreadable
    frames, masks of another size or without a frame). Over the frame or size limit: one `ValueError` that says
    which limit."""
    primary = primary or labels[0]
    limits = limits or BatchLimits()
    budget = [limits.max_bytes]
    problems: list[str] = []
    frames = [m for p in images for m in _members(Path(p), limits, budget)]
    if len(frames) > limits.max_frames:
        raise ValueError(f"{len(frames)} frames exceed the limit of {limits.max_frames} per batch")
    mask_files = [m for p in masks for m in _members(Path(p), limits, budget)]
    if budget[0] < 0:
        raise ValueError(f"the upload exceeds the limit of {limits.max_bytes // 2**20} MB per batch")
    by_stem: dict[str, dict[str, np.ndarray]] = {}
    for name, content in mask_files:
        stem, label = _mask_key(name, labels)
        try:
            by_stem.setdefault(stem, {})[label or primary] = mask_to_binary(_decode(name, content, limits), name=name)
        except ValueError as exc:
            problems.append(str(exc))
    items = []
    for name, content in frames:
        try:
            image = _decode(name, content, limits)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        gts = by_stem.pop(Path(name).stem, {})
        for label, mask in list(gts.items()):
            if mask.shape != image.shape[:2]:
                problems.append(
                    f"{name}: its {label} mask is {mask.shape[1]}x{mask.shape[0]} but the frame "
                    f"{image.shape[1]}x{image.shape[0]}"
                )
                del gts[label]
        mask = None if not gts else gts[primary] if list(gts) == [primary] else gts
        items.append(BatchItem(name, image, mask))
    problems += [f"mask {stem}: no frame of that name" for stem in by_stem]
    return items, problems


def segment_batch(
    pipeline: Any, items: Sequence[BatchItem], progress: Callable[[int, int], None] | None = None
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Results of every frame (in batches of the pipeline's size) and one metrics row per frame and scored label."""
    results, rows = [], []
    step = max(1, getattr(pipeline, "batch_size", 4))
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        results += pipeline.predict([it.image for it in chunk], [it.mask for it in chunk])
        if progress is not None:
            progress(min(start + step, len(items)), len(items))
    for item, r in zip(items, results):
        base = {
            "file": item.name,
            "width": item.image.shape[1],
            "height": item.image.shape[0],
            "inference_ms": round(r.timings_ms.get("inference", float("nan")), 1),
        }
        if not r.label_metrics:
            rows.append({**base, **{f"{lb}_pixels": int(m.sum()) for lb, m in r.masks.items()}})
        for label, m in r.label_metrics.items():
            rows.append(
                {
                    **base,
                    "label": label,
                    "iou": m["iou"],
                    "dice": m["dice"],
                    "precision": m["precision"],
                    "recall": m["recall"],
                    "pred_area": m["pred_area"],
                    "target_area": m["target_area"],
                }
            )
    return results, rows


def summarize_batch(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean IoU and Dice with 95% bootstrap intervals per label, and the frames by IoU, worst first."""
    from .evaluation import bootstrap_ci

    scored = [r for r in rows if "iou" in r]
    out: dict[str, Any] = {"frames": len({r["file"] for r in rows}), "labels": {}, "worst": []}
    for label in dict.fromkeys(r["label"] for r in scored):
        mine = [r for r in scored if r["label"] == label]
        entry = {}
        for key in ("iou", "dice"):
            v = np.array([r[key] for r in mine], np.float64)
            entry[key] = {"mean": float(v.mean()), "ci95": list(bootstrap_ci(v))}
        entry["n"] = len(mine)
        out["labels"][label] = entry
    out["worst"] = [r["file"] for r in sorted(scored, key=lambda r: r["iou"])]
    return out


def _gt_dict(item: BatchItem, result: Any) -> dict[str, np.ndarray] | None:
    if item.mask is None or isinstance(item.mask, dict):
        return item.mask
    return {next(iter(result.label_metrics), "lesion"): item.mask}


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_batch_outputs(
    out_dir: str | Path,
    items: Sequence[BatchItem],
    results: Sequence[Any],
    rows: Sequence[dict[str, Any]],
    overlays: bool = True,
) -> tuple[Path, Path]:
    """``masks.zip`` (``masks/<stem>.png`` per label folder for several labels, 0/255 at the original size, and
    ``overlays/<stem>.png``) and ``metrics.csv``; the masks drop into the folder layout `trus_hf.data` reads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    zip_path = out / "masks.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as z:
        for item, r in zip(items, results):
            stem = Path(item.name).stem
            for label, mask in r.masks.items():
                folder = "masks" if len(r.masks) == 1 else f"masks_{label}"
                z.writestr(f"{folder}/{stem}.png", _png(mask * 255))
            if overlays:
                z.writestr(f"overlays/{stem}.png", _png(overlay(item.image, r.masks, _gt_dict(item, r))))
    fields = list(dict.fromkeys(k for r in rows for k in r))
    csv_path = write_csv(out / "metrics.csv", rows, fields)
    return zip_path, csv_path


def segment_cine(
    pipeline: Any, frames: Sequence[np.ndarray], progress: Callable[[int, int], None] | None = None, batch_size: int = 8
) -> tuple[list[np.ndarray], dict[str, list[int]], dict[str, float]]:
    """Segment every frame of a cine loop in batches: the overlay frames, the area (pixels) of each label per frame,
    and where the time went (milliseconds per frame: pre-processing, inference, post-processing, overlays)."""
    import time

    pipeline.batch_size = max(1, int(batch_size))
    overlays, areas = [], {label: [] for label in pipeline.labels}
    spent = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0, "overlay": 0.0}
    for start in range(0, len(frames), pipeline.batch_size):
        chunk = list(frames[start : start + pipeline.batch_size])
        results = pipeline.predict(chunk)
        t = time.perf_counter()
        for frame, r in zip(chunk, results):
            overlays.append(overlay(frame, r.masks))
            for label, m in r.masks.items():
                areas[label].append(int(m.sum()))
            for key in ("preprocess", "inference", "postprocess"):
                spent[key] += r.timings_ms.get(key, 0.0)
        spent["overlay"] += (time.perf_counter() - t) * 1000
        if progress is not None:
            progress(min(start + len(chunk), len(frames)), len(frames))
    n = max(1, len(frames))
    return overlays, areas, {k: v / n for k, v in spent.items()}
