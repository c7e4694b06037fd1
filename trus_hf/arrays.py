"""Pure array conversions that every layer shares: PIL modes to arrays (the one decoder of pixel modes), any image to
grayscale float in [0, 1], and ground-truth masks to validated 0/1 arrays.

Nothing here reads files or knows about models; `trus_hf.fileio` decodes files with `pil_to_array`, the processor,
the data loaders, the pictures and the app validate with `to_gray_float` and `mask_to_binary`.

Example:
    >>> import numpy as np
    >>> from trus_hf.arrays import mask_to_binary, to_gray_float
    >>> to_gray_float(np.full((2, 2), 255, np.uint8)).max()
    np.float32(1.0)
    >>> mask_to_binary(np.array([[0, 255]], np.uint8)).tolist()
    [[0, 1]]
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from PIL import Image

__all__ = ["IGNORE", "MAX_PIXELS", "label_stack", "mask_to_binary", "pil_to_array", "to_gray_float", "to_rgb8"]

#: The largest image (height x width) the library decodes or processes; larger inputs get a `ValueError`.
MAX_PIXELS = 40_000_000
#: Value of a label stack's pixels that no annotation covers (a label not annotated on an image).
IGNORE = 255


def pil_to_array(im: Image.Image, name: str = "image", keep_alpha: bool = False) -> np.ndarray:
    """A decoded PIL image as an array: 16-bit modes as uint16, ``L``/``1`` as uint8 (H, W), ``F`` as float32, every
    colour mode as RGB uint8 (H, W, 3); with ``keep_alpha``, an image with transparency as RGBA uint8 (H, W, 4).

    ``I`` (32-bit integer) must lie in 0..65535. ``F`` must be finite; values outside [0, 1] and [0, 255] are
    rescaled to [0, 1] by their minimum and maximum (a float file has no agreed intensity scale).
    """
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im, dtype=np.uint16)
    if im.mode == "I":
        arr = np.asarray(im, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError(f"{name}: 32-bit integer image outside 0..65535 (range {arr.min()}..{arr.max()})")
        return arr.astype(np.uint16)
    if im.mode in ("L", "1"):
        return np.asarray(im.convert("L"))
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < 0.0 or hi > 255.0:
            arr = (arr - lo) / max(hi - lo, 1e-9)
        return arr
    if keep_alpha and ("A" in im.getbands() or "transparency" in im.info):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))


def _as_array(image: Any, name: str) -> np.ndarray:
    if isinstance(image, Image.Image):
        return pil_to_array(image, name)
    try:
        return np.asarray(image)
    except Exception as exc:  # e.g. ragged nested lists
        raise ValueError(f"{name}: cannot be read as an array ({exc})") from exc


def to_gray_float(image: Any, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """Convert a PIL image or array (grayscale, RGB, RGBA, 8/16-bit, bool or float) to float32 grayscale in [0, 1].

    Floats must be finite and lie in [0, 1], or in [0, 255] (then divided by 255). Raises `ValueError` naming what was
    expected and what came.
    """
    arr = _as_array(image, name)
    if arr.dtype == object or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty numeric image array, got dtype {arr.dtype} shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        channels = arr.shape[-1]
    elif arr.ndim == 2:
        channels = 1
    else:
        raise ValueError(f"{name}: expected shape (H, W) or (H, W, C) with C in 1, 3, 4; got {arr.shape}")
    if max_pixels is not None and arr.shape[0] * arr.shape[1] > max_pixels:
        raise ValueError(
            f"{name}: {arr.shape[1]}x{arr.shape[0]} = {arr.shape[0] * arr.shape[1]} pixels exceeds the "
            f"limit of {max_pixels}"
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{name}: integer images must be uint8, uint16 or lie in 0..255; got {arr.dtype} with range {lo}..{hi}"
            )
        arr = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 255.0:
            raise ValueError(f"{name}: float images must lie in [0, 1] or [0, 255]; got range [{lo:g}, {hi:g}]")
        if hi > 1.0:
            arr = arr / 255.0
    else:
        raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
    if channels == 1:
        return np.ascontiguousarray(arr.reshape(arr.shape[0], arr.shape[1]))
    return cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)


def to_rgb8(image: Any) -> np.ndarray:
    """Any supported image (gray/RGB/RGBA, 8/16-bit, float) as RGB uint8 (H, W, 3) for display."""
    img = _as_array(image, "image")
    if img.dtype != np.uint8:
        img = (to_gray_float(img) * 255 + 0.5).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[-1] == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(img[..., :3])


def mask_to_binary(mask: Any, name: str = "mask") -> np.ndarray:
    """Validate a ground-truth mask (values {0,1}, {0,255} or bool; 2-D or single-valued channels) -> uint8 0/1."""
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask.convert("L") if mask.mode not in ("L", "1", "I;16", "I") else mask)
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] in (3, 4):
        if not (m[..., :3] == m[..., :1]).all():
            raise ValueError(f"{name}: a color mask must have equal R, G and B channels")
        m = m[..., 0]
    elif m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"{name}: expected a 2-D mask, got shape {m.shape}")
    if m.dtype == np.bool_:
        return m.astype(np.uint8)
    values = np.unique(m)
    if values.size > 2 or not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = values[:10].tolist()
        raise ValueError(
            f"{name}: mask values must be {{0, 1}} or {{0, 255}}, got {shown}{' ...' if values.size > 10 else ''}"
        )
    return (m > 0).astype(np.uint8)


def label_stack(stack: Any, name: str = "labels") -> np.ndarray:
    """Validate a stack of per-label masks (L, H, W) with values 0, 1 and `IGNORE` -> uint8."""
    m = np.asarray(stack)
    if m.ndim != 3 or m.size == 0:
        raise ValueError(f"{name}: expected a label stack of shape (labels, H, W), got {m.shape}")
    bad = set(np.unique(m).tolist()) - {0, 1, IGNORE}
    if bad:
        raise ValueError(f"{name}: label stack values must be 0, 1 or {IGNORE} (not annotated), got {sorted(bad)[:10]}")
    return m.astype(np.uint8)
