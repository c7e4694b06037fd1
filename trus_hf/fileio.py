"""Reading images safely and writing files atomically.

`read_image` is the one decoder behind the CLI, the datasets loaders and the app: PNG, JPEG, BMP, TIFF (Pillow) and
DICOM (pydicom), each failure a `ValueError` that names the file and the problem. Writes go to a temporary file in the
same folder, then `os.replace`, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .arrays import MAX_PIXELS, mask_to_binary, pil_to_array

__all__ = [
    "IMAGE_EXTENSIONS",
    "DICOM_EXTENSIONS",
    "atomic_dir",
    "atomic_file",
    "read_dicom_frames",
    "read_image",
    "read_mask",
    "remove_stale_temporaries",
    "write_csv",
    "write_json",
    "write_jsonl",
    "write_png",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_EXTENSIONS = (".dcm", ".dicom")


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def read_dicom_frames(path: str | Path) -> tuple[np.ndarray, object]:
    """All frames of a DICOM file as (F, H, W) or (F, H, W, 3) uint8/uint16, plus the dataset (for tags)."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable DICOM file ({exc.__class__.__name__}: {exc})") from exc
    if "PixelData" not in ds:
        raise ValueError(f"{path}: DICOM file has no pixel data")
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise ValueError(
            f"{path}: cannot decode DICOM pixel data (transfer syntax "
            f"{getattr(ds.file_meta, 'TransferSyntaxUID', '?')}): {exc}"
        ) from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric.startswith("YBR"):
        from pydicom.pixels import convert_color_space

        arr = convert_color_space(arr, photometric, "RGB")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    if frames == 1:
        arr = arr[None]
    if photometric == "MONOCHROME1":
        arr = arr.max() - arr
    if samples == 1 and arr.ndim != 3 or samples == 3 and arr.ndim != 4:
        raise ValueError(f"{path}: unexpected DICOM pixel array shape {arr.shape}")
    if arr.dtype not in (np.uint8, np.uint16):
        arr = arr.astype(np.float64)
        lo, hi = arr.min(), arr.max()
        arr = ((arr - lo) / max(hi - lo, 1e-9) * 65535).astype(np.uint16)
    return arr, ds


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, frame: int = 0, keep_alpha: bool = False) -> np.ndarray:
    """Decode an image file into an array (H, W) or (H, W, 3), uint8 or uint16 (with ``keep_alpha``, an image with
    transparency as (H, W, 4): an editor's layer, whose alpha is the drawing).

    Raises `ValueError` naming the file for: missing or empty files, unsupported formats, truncated data,
    decompression bombs (more than ``max_pixels``), DICOM without pixel data.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty (0 bytes)")
    if _is_dicom(path):
        frames, _ = read_dicom_frames(path)
        if not 0 <= frame < len(frames):
            raise ValueError(f"{path}: frame {frame} out of range, the file has {len(frames)}")
        arr = frames[frame]
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    if im.width * im.height > max_pixels:
                        raise ValueError(f"{path}: {im.width}x{im.height} pixels exceeds the limit of {max_pixels}")
                    im.load()
                    arr = pil_to_array(im, name=str(path), keep_alpha=keep_alpha)
        except ValueError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(f"{path}: refused as a decompression bomb ({exc})") from exc
        except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error... for corrupt data
            kind = (
                "unsupported or unrecognised image format"
                if isinstance(exc, Image.UnidentifiedImageError)
                else "corrupt or truncated image"
            )
            raise ValueError(
                f"{path}: {kind} ({exc.__class__.__name__}: {exc}); expected one of "
                f"{', '.join(IMAGE_EXTENSIONS + DICOM_EXTENSIONS)}"
            ) from exc
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise ValueError(f"{path}: {arr.shape[1]}x{arr.shape[0]} pixels exceeds the limit of {max_pixels}")
    return arr


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask PNG as uint8 0/1, validated (values {0,1} or {0,255}); errors name the file."""
    return mask_to_binary(read_image(path), name=str(path))


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write an array as a lossless PNG, atomically."""
    path = Path(path)
    with atomic_file(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return path


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]], fieldnames: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV, atomically; columns are ``fieldnames`` (extra keys ignored) or the first row's keys."""
    rows = list(rows)
    fields = list(fieldnames) if fieldnames is not None else list(rows[0]) if rows else []
    with atomic_file(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return Path(path)


def write_json(path: str | Path, data: Any, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON, atomically (non-JSON numbers such as numpy floats are written as floats)."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, default=float))
    return Path(path)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write dict rows as JSON lines (an imagefolder's ``metadata.jsonl``), atomically."""
    with atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return Path(path)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it takes the place of ``path`` (the old one is removed
    only after the new one is complete)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the final folder gets ordinary permissions
    try:
        yield tmp
        for f in tmp.rglob("*"):  # some writers (safetensors) create 0600 files; the folder gets ordinary modes
            os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~umask)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete what `atomic_file` / `atomic_dir` leave behind when a process is killed mid-write (``kill -9`` runs no
    cleanup): hidden ``.<name>.<random>.tmp`` files and folders and ``.<name>.old-<pid>`` folders. Call it before
    resuming in ``folder``; the real files are never partial, only these temporaries can remain."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for p in sorted(folder.rglob(".*"), key=lambda q: len(q.parts), reverse=True):
        if p.name.endswith(".tmp") or ".old-" in p.name:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
