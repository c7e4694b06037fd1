"""`TrusImageProcessor`: the one place that knows how a TRUS frame becomes model input, and how logits go back.

Steps, in order: to grayscale float in [0, 1] -> crop the ultrasound region (automatic fan/rectangle detection or a
fixed box) -> resize to ``size`` (optionally keeping the aspect ratio, padded) -> pad to a multiple of
``size_divisor`` -> isotropic diffusion (heat equation) -> optionally, each frame's echo levels standardised ->
replicate to ``num_channels`` -> mean/std normalisation.
Every step is recorded in a per-image geometry so that `post_process_semantic_segmentation` maps logits back into the
ORIGINAL image: a predicted mask overlays the uploaded image pixel for pixel.

It subclasses transformers' `BaseImageProcessor` for `save_pretrained` / `from_pretrained` / `push_to_hub`
(``preprocessor_config.json``); the pixel work is OpenCV, which is several times faster than PIL/torchvision for these
single-channel float operations on CPU.

Example:
    >>> from trus_hf import TrusImageProcessor
    >>> from trus_hf.synthetic import generate_phantom
    >>> ph = generate_phantom(0, (300, 400))
    >>> proc = TrusImageProcessor(size={"height": 128, "width": 128})
    >>> batch = proc(ph.image, masks=ph.lesion_mask)
    >>> tuple(batch["pixel_values"].shape), tuple(batch["labels"].shape)
    ((1, 3, 128, 128), (1, 128, 128))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from .arrays import IGNORE, MAX_PIXELS, label_stack, mask_to_binary, to_gray_float

# to_gray_float lives in trus_hf.arrays; it stays importable from here, where users met it first.
__all__ = [
    "Geometry",
    "TrusImageProcessor",
    "detect_ultrasound_roi",
    "drop_small_components",
    "isotropic_diffusion",
    "standardize_echo",
    "to_gray_float",
]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
_INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}


@dataclass
class Geometry:
    """Where a processed image came from: enough to map model output back onto the original pixels."""

    orig_height: int
    orig_width: int
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in the original image (x1, y1 exclusive)
    resized: tuple[int, int]  # height, width of the crop after resizing
    offset: tuple[int, int]  # top, left of the resized crop in the padded canvas
    canvas: tuple[int, int]  # height, width of the model input

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Short side (pixels) of the frame on which `detect_ultrasound_roi` computes its opening.
ROI_WORK_SIZE = 200


def detect_ultrasound_roi(
    gray: np.ndarray, threshold: float = 0.04, min_fraction: float = 0.05
) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the ultrasound fan or rectangle in a grayscale frame in [0, 1].

    The image area is the largest connected bright region after smoothing and a wide morphological opening, which
    cuts off what touches it thinly (burned-in text, rulers, calipers, UI lines); the box is then taken over the
    bright pixels within a few pixels of that region, so the fan's own corners are kept. When no region covers at
    least ``min_fraction`` of the frame, the whole frame is returned.

    The opening and the components are computed on the smoothed frame shrunk to about `ROI_WORK_SIZE` pixels on
    its short side: the opening's kernel is a twelfth of the frame, so its cost grows with the square of the
    frame's size (15 of 22 ms at 600x800 at full size, 5.5 ms in all so). The region is brought back to full size
    before the dilation and the box, which are taken at full resolution as before; on 1,450 phantoms and BUS-BRA
    frames the boxes are those of the full-size computation, 98% of them to the pixel and all within 7 pixels.
    """
    h, w = gray.shape
    full = (0, 0, w, h)
    if h < 8 or w < 8:
        return full
    k = max(3, (min(h, w) // 50) | 1)
    smooth = cv2.blur(gray, (k, k))
    binary = (smooth > threshold).astype(np.uint8)
    f = max(1, min(h, w) // ROI_WORK_SIZE)  # the smoothing (k >= f) keeps the shrunk frame free of aliasing
    small = (
        binary
        if f == 1
        else (cv2.resize(smooth, (w // f, h // f), interpolation=cv2.INTER_AREA) > threshold).astype(np.uint8)
    )
    wide = max(2 * k + 1, (min(h, w) // 12) | 1)  # the full-size kernel, shrunk with the frame below
    wide = max(3, round(wide / f) | 1)
    opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (wide, wide)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if n <= 1:
        return full
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < min_fraction * small.size:
        return full
    region = (labels == best).astype(np.uint8)
    if f > 1:
        region = (cv2.resize(region.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.uint8)
    region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2))
    x, y, bw, bh = cv2.boundingRect(region & binary)
    return (x, y, x + bw, y + bh) if bw and bh else full


def isotropic_diffusion(image: np.ndarray, iterations: int = 10, step: float = 0.2) -> np.ndarray:
    """Isotropic (linear heat-equation) diffusion: ``u <- u + step * laplacian(u)``, ``iterations`` times.

    Vectorised with OpenCV's Laplacian (replicated borders). Stable for ``0 < step <= 0.25``; equivalent to a Gaussian
    blur of sigma ``sqrt(2 * step * iterations)``.
    """
    if not 0.0 < step <= 0.25:
        raise ValueError(f"diffusion step must be in (0, 0.25] for stability, got {step}")
    u = np.array(image, dtype=np.float32, copy=True)
    for _ in range(int(iterations)):
        u += step * cv2.Laplacian(u, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    return u


#: Pixels at or below this level (of [0, 1]) are the background around the fan, or anechoic: `standardize_echo` leaves
#: them out of each frame's statistics and unchanged.
ECHO_FLOOR = 0.02


def standardize_echo(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Map each frame's echo pixels (above `ECHO_FLOOR`) to ``mean`` and ``std``, clipped to [0, 1].

    A B-mode gray level is an affine function of echo strength in dB: the overall gain shifts it, the dynamic range
    of the log compression scales it, both set per scanner and per user. Standardising each frame removes both, so a
    model trained on standardised frames does not learn one scanner's gain and dynamic range. (H, W) or (N, H, W)."""
    x = np.asarray(x, np.float32)
    frames = x.reshape(-1, *x.shape[-2:])
    out = frames.copy()
    for frame, dst in zip(frames, out):
        echo = frame > ECHO_FLOOR
        if echo.sum() < 16:  # nothing to measure: an empty frame stays as it is
            continue
        values = frame[echo]
        scale = std / max(float(values.std()), 1e-3)
        dst[echo] = np.clip((values - values.mean()) * scale + mean, 0.0, 1.0)
    return out.reshape(x.shape)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))  # clipped: no overflow warnings for extreme logits


def _as_list(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, np.ndarray) and x.ndim == 4:
        return list(x)
    return [x]


def drop_small_components(mask: np.ndarray, min_pixels: float) -> np.ndarray:
    """A 0/1 mask without its 8-connected components of fewer than ``min_pixels`` pixels."""
    if min_pixels <= 1 or not mask.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    return keep[labels].astype(np.uint8)


def _per_label(values: dict[str, float] | None, name: str, low: float, high: float) -> dict[str, float]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{name} must map label names to numbers, got {values!r}")
    out = {str(k): float(v) for k, v in values.items()}
    bad = {k: v for k, v in out.items() if not low <= v <= high}
    if bad:
        raise ValueError(f"{name} values must lie in [{low}, {high}], got {bad}")
    return out


class TrusImageProcessor(BaseImageProcessor):
    r"""Preprocess TRUS frames (and masks) for both architectures, and map predictions back.

    Args:
        size: ``{"height": H, "width": W}`` of the model input (default 768x768).
        interpolation: image interpolation, one of ``area``, ``bilinear``, ``bicubic`` (masks always ``nearest``).
        keep_aspect_ratio: resize to fit inside ``size`` and pad instead of stretching.
        size_divisor: pad height and width up to a multiple of this (FPN needs 32).
        do_crop_roi: crop to the ultrasound region before resizing.
        crop_box: fixed ``[x0, y0, x1, y1]`` crop; overrides automatic detection.
        do_diffusion, diffusion_iterations, diffusion_step: isotropic diffusion after resizing.
        do_standardize, standardize_mean, standardize_std: map each frame's echo levels (pixels above
            `ECHO_FLOOR`) to this mean and standard deviation (`standardize_echo`), before normalisation; a model
            trained with it is blind to the gain and dynamic range a scanner displays with.
        do_normalize, image_mean, image_std: per-channel normalisation after replicating gray to ``num_channels``.
        max_pixels: inputs larger than this are refused with a `ValueError`.
        mask_threshold: per label, the probability above which a pixel belongs to the mask (labels not named: 0.5);
            chosen on validation data by `trus_hf.evaluation.tune_postprocessing` and saved with the model.
        min_mask_fraction: per label, connected components smaller than this share of the image are dropped (labels
            not named: none dropped); tuned with the threshold.
        multiscale: square input sides whose predictions `SegmentationPipeline` averages at the original size
            (multi-scale test-time augmentation; each side costs one forward pass per view); None: ``size`` alone.
            The transformers ``pipeline("image-segmentation")`` integration averages them the same way.
        size_selection: where ``size`` (or ``multiscale``) was chosen after training rather than trained at, the
            record of that choice (`trus_hf.evaluation.tune_input_size`): ``trained`` (the size the weights were
            trained at), ``scores`` (mean validation IoU per candidate), ``frames`` and ``on`` (which frames).
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: dict[str, int] | None = None,
        interpolation: str = "area",
        keep_aspect_ratio: bool = False,
        size_divisor: int = 32,
        do_crop_roi: bool = True,
        crop_box: Sequence[int] | None = None,
        roi_threshold: float = 0.04,
        do_diffusion: bool = True,
        diffusion_iterations: int = 10,
        diffusion_step: float = 0.2,
        do_standardize: bool = False,
        standardize_mean: float = 0.35,
        standardize_std: float = 0.14,
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        num_channels: int = 3,
        max_pixels: int = MAX_PIXELS,
        mask_threshold: dict[str, float] | None = None,
        min_mask_fraction: dict[str, float] | None = None,
        multiscale: Sequence[int] | None = None,
        size_selection: dict[str, Any] | None = None,
        **kwargs,
    ):
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        size = dict(size or {"height": 768, "width": 768})
        if set(size) != {"height", "width"} or min(size.values()) < 1:
            raise ValueError(f"size must be {{'height': H, 'width': W}} with positive values, got {size}")
        if interpolation not in ("area", "bilinear", "bicubic"):
            raise ValueError(f"interpolation must be one of area, bilinear, bicubic; got {interpolation!r}")
        self.size = {"height": int(size["height"]), "width": int(size["width"])}
        self.interpolation = interpolation
        self.keep_aspect_ratio = bool(keep_aspect_ratio)
        self.size_divisor = int(size_divisor)
        self.do_crop_roi = bool(do_crop_roi)
        if crop_box is not None and (len(crop_box) != 4 or crop_box[0] >= crop_box[2] or crop_box[1] >= crop_box[3]):
            raise ValueError(f"crop_box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1, got {crop_box}")
        self.crop_box = list(map(int, crop_box)) if crop_box is not None else None
        self.roi_threshold = float(roi_threshold)
        self.do_diffusion = bool(do_diffusion)
        self.diffusion_iterations = int(diffusion_iterations)
        self.diffusion_step = float(diffusion_step)
        self.do_standardize = bool(do_standardize)
        if not (0.0 < standardize_mean < 1.0 and 0.0 < standardize_std < 0.5):
            raise ValueError(
                "standardize_mean must lie in (0, 1) and standardize_std in (0, 0.5), "
                f"got {standardize_mean} and {standardize_std}"
            )
        self.standardize_mean = float(standardize_mean)
        self.standardize_std = float(standardize_std)
        self.do_normalize = bool(do_normalize)
        self.num_channels = int(num_channels)
        self.image_mean = (
            list(image_mean) if image_mean is not None else (IMAGENET_MEAN if num_channels == 3 else [0.5])
        )
        self.image_std = list(image_std) if image_std is not None else (IMAGENET_STD if num_channels == 3 else [0.25])
        if len(self.image_mean) != self.num_channels or len(self.image_std) != self.num_channels:
            raise ValueError(
                f"image_mean/image_std need {self.num_channels} values, got {self.image_mean} / {self.image_std}"
            )
        self.max_pixels = int(max_pixels)
        self.set_postprocessing(mask_threshold, min_mask_fraction)
        trained = (size_selection or {}).get("trained")
        if size_selection is not None and (
            not isinstance(trained, dict) or set(trained) != {"height", "width"} or min(trained.values()) < 1
        ):
            raise ValueError(
                "size_selection needs the size trained at, 'trained': {'height': H, 'width': W}; "
                f"got {size_selection}"
            )
        self.size_selection = dict(size_selection) if size_selection is not None else None
        if multiscale is not None and (len(multiscale) < 2 or min(int(v) for v in multiscale) < 1):
            raise ValueError(f"multiscale needs at least two positive input sides, got {multiscale}")
        self.multiscale = sorted({int(v) for v in multiscale}) if multiscale is not None else None

    @property
    def trained_size(self) -> dict[str, int]:
        """The ``size`` the weights were trained at: ``size`` itself unless an input size was chosen after
        training."""
        return dict(self.size if self.size_selection is None else self.size_selection["trained"])

    def with_size(self, side: int, multiscale: Sequence[int] | None = None) -> TrusImageProcessor:
        """A copy of this processor that resizes to ``side`` x ``side`` (with ``multiscale``, averages those sides
        instead; everything else the same)."""
        if int(side) < 1:
            raise ValueError(f"the input side must be a positive number of pixels, got {side}")
        checked = TrusImageProcessor(multiscale=multiscale)  # validated as in __init__
        other = copy.deepcopy(self)
        other.size, other.multiscale = {"height": int(side), "width": int(side)}, checked.multiscale
        return other

    def set_input_size(self, selection: dict[str, Any] | None = None) -> None:
        """Take the input size chosen after training (`trus_hf.evaluation.tune_input_size`'s result: ``size``,
        ``multiscale`` and the record kept as ``size_selection``); no argument goes back to the size the weights
        were trained at, one scale."""
        if selection is None:
            self.size, self.multiscale, self.size_selection = self.trained_size, None, None
            return
        record = {k: v for k, v in selection.items() if k not in ("size", "multiscale")}
        checked = TrusImageProcessor(  # validated as in __init__
            size=selection["size"], multiscale=selection.get("multiscale"), size_selection=record
        )
        self.size, self.multiscale, self.size_selection = checked.size, checked.multiscale, checked.size_selection

    def scale_processors(self) -> list[TrusImageProcessor]:
        """One processor per input side of ``multiscale`` (each with one scale), or ``[self]`` without it."""
        return [self.with_size(side) for side in self.multiscale] if self.multiscale else [self]

    def set_postprocessing(
        self, mask_threshold: dict[str, float] | None = None, min_mask_fraction: dict[str, float] | None = None
    ) -> None:
        """Replace the tuned post-processing (e.g. with `tune_postprocessing`'s result; no argument clears it),
        validated as in the constructor."""
        self.mask_threshold = _per_label(mask_threshold, "mask_threshold", 0.0, 1.0)
        self.min_mask_fraction = _per_label(min_mask_fraction, "min_mask_fraction", 0.0, 0.5)

    def threshold_for(self, label: str, threshold: float | None = None) -> float:
        """``threshold`` when given, else the label's tuned one, else 0.5."""
        return self.mask_threshold.get(label, 0.5) if threshold is None else threshold

    # ------------------------------------------------------------------ forward mapping
    def _crop_for(self, gray: np.ndarray) -> tuple[int, int, int, int]:
        h, w = gray.shape
        if self.crop_box is not None:
            x0, y0, x1, y1 = self.crop_box
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if x0 >= x1 or y0 >= y1:
                raise ValueError(f"crop_box {self.crop_box} lies outside the {w}x{h} image")
            return x0, y0, x1, y1
        if self.do_crop_roi:
            return detect_ultrasound_roi(gray, self.roi_threshold)
        return 0, 0, w, h

    @property
    def canvas_size(self) -> tuple[int, int]:
        """(height, width) of every processed image: ``size`` padded up to a multiple of ``size_divisor``."""
        d = max(1, self.size_divisor)
        return math.ceil(self.size["height"] / d) * d, math.ceil(self.size["width"] / d) * d

    def _layout(self, crop_h: int, crop_w: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        th, tw = self.size["height"], self.size["width"]
        if self.keep_aspect_ratio:
            scale = min(th / crop_h, tw / crop_w)
            rh, rw = max(1, round(crop_h * scale)), max(1, round(crop_w * scale))
        else:
            rh, rw = th, tw
        ch, cw = self.canvas_size
        top, left = (ch - rh) // 2, (cw - rw) // 2
        return (rh, rw), (top, left), (ch, cw)

    def geometry_for(self, gray: np.ndarray) -> Geometry:
        """The geometry that `preprocess` will use for this grayscale image."""
        x0, y0, x1, y1 = self._crop_for(gray)
        resized, offset, canvas = self._layout(y1 - y0, x1 - x0)
        return Geometry(gray.shape[0], gray.shape[1], (x0, y0, x1, y1), resized, offset, canvas)

    def _place(self, arr: np.ndarray, geo: Geometry, interp: int) -> np.ndarray:
        x0, y0, x1, y1 = geo.crop
        rh, rw = geo.resized
        crop = np.ascontiguousarray(arr[y0:y1, x0:x1])
        if interp == cv2.INTER_AREA and (rh > crop.shape[0] or rw > crop.shape[1]):
            interp = cv2.INTER_LINEAR  # AREA upsampling is nearest-like in OpenCV; bilinear is what users expect
        resized = cv2.resize(crop, (rw, rh), interpolation=interp)
        canvas = np.zeros(geo.canvas, dtype=arr.dtype)
        top, left = geo.offset
        canvas[top : top + rh, left : left + rw] = resized
        return canvas

    def prepare_gray(self, gray: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """The expensive, deterministic half: crop, resize, pad, diffusion -> (H, W) float32 in [0, 1].

        Training caches this output (datasets ``map``) and augments it before `finalize`."""
        geo = self.geometry_for(gray)
        x = self._place(gray, geo, _INTERPOLATIONS[self.interpolation])
        if self.do_diffusion and self.diffusion_iterations > 0:
            x = isotropic_diffusion(x, self.diffusion_iterations, self.diffusion_step)
        return x, geo

    def finalize(self, x: np.ndarray) -> np.ndarray:
        """The cheap half: (H, W) or (N, H, W) in [0, 1] -> (C, H, W) / (N, C, H, W) normalised float32."""
        x = np.asarray(x, np.float32)
        if self.do_standardize:
            x = standardize_echo(x, self.standardize_mean, self.standardize_std)
        axis = 0 if x.ndim == 2 else 1
        x = np.repeat(np.expand_dims(x, axis), self.num_channels, axis=axis)
        if self.do_normalize:
            shape = (-1, 1, 1) if axis == 0 else (1, -1, 1, 1)
            mean = np.asarray(self.image_mean, np.float32).reshape(shape)
            std = np.asarray(self.image_std, np.float32).reshape(shape)
            x = (x - mean) / std
        return x

    def process_gray(self, gray: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """Process one float32 grayscale image: returns (C, H, W) float32 pixel values and its geometry."""
        x, geo = self.prepare_gray(gray)
        return self.finalize(x), geo

    def prepare_mask(self, mask: np.ndarray, geo: Geometry) -> np.ndarray:
        """A 0/1 mask (H, W), or a label stack (L, H, W) with values 0, 1 and `trus_hf.losses.IGNORE`, mapped into
        the model input canvas of ``geo`` (nearest neighbour). A channel that is entirely IGNORE (a label not
        annotated on this image) stays IGNORE in the padding too."""
        if mask.ndim == 2:
            return self._place(mask, geo, cv2.INTER_NEAREST_EXACT)
        out = np.stack([self._place(np.ascontiguousarray(m), geo, cv2.INTER_NEAREST_EXACT) for m in mask])
        unannotated = (mask == IGNORE).all(axis=(1, 2))
        out[unannotated] = IGNORE
        return out

    #: Validation of ground-truth masks (`trus_hf.arrays.mask_to_binary`), reachable from the processor as in
    #: transformers' processors.
    mask_to_binary = staticmethod(mask_to_binary)

    def preprocess(self, images: Any, masks: Any = None, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """Process one image or a list of images (and optional masks of the same sizes).

        A mask is a 0/1 mask (H, W) for one label, or a label stack (L, H, W) for several (values 0, 1 and
        `trus_hf.losses.IGNORE` where a label is not annotated). Returns a `BatchFeature` with ``pixel_values``
        (N, C, H, W), ``labels`` (N, H, W) or (N, L, H, W) int64 when masks are given, and ``geometries``: a list of
        `Geometry` for `post_process_semantic_segmentation`.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        image_list = _as_list(images)
        mask_list = _as_list(masks) if masks is not None else None
        if mask_list is not None and len(mask_list) != len(image_list):
            raise ValueError(f"got {len(image_list)} images but {len(mask_list)} masks")
        pixels, labels, geos = [], [], []
        for i, image in enumerate(image_list):
            gray = to_gray_float(image, name=f"image {i}", max_pixels=self.max_pixels)
            x, geo = self.process_gray(gray)
            pixels.append(x)
            geos.append(geo)
            if mask_list is not None:
                raw = np.asarray(mask_list[i])
                m = (
                    label_stack(raw, f"mask {i}")
                    if raw.ndim == 3 and raw.shape[1:] == gray.shape
                    else self.mask_to_binary(raw, name=f"mask {i}")
                )
                if m.shape[-2:] != gray.shape:
                    raise ValueError(
                        f"mask {i}: size {m.shape[-1]}x{m.shape[-2]} differs from its image "
                        f"{gray.shape[1]}x{gray.shape[0]}"
                    )
                labels.append(self.prepare_mask(m, geo))
        if len({p.shape for p in pixels}) > 1:
            raise ValueError("processed images differ in size; use a fixed `size` without keep_aspect_ratio changes")
        data: dict[str, Any] = {"pixel_values": np.stack(pixels)}
        if mask_list is not None:
            data["labels"] = np.stack(labels).astype(np.int64)
        out = BatchFeature(data=data, tensor_type=return_tensors)
        out["geometries"] = geos
        return out

    def __call__(self, images: Any, masks: Any = None, **kwargs) -> BatchFeature:
        return self.preprocess(images, masks=masks, **kwargs)

    # ------------------------------------------------------------------ inverse mapping
    @staticmethod
    def _logits_numpy(outputs: Any) -> np.ndarray:
        logits = getattr(outputs, "logits", outputs)
        if hasattr(logits, "detach"):
            logits = logits.detach().float().cpu().numpy()
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim == 3:
            logits = logits[:, None]
        if logits.ndim != 4:
            raise ValueError(f"expected logits of shape (N, labels, H, W), got {logits.shape}")
        return logits

    def post_process_logits(
        self,
        outputs: Any,
        geometries: Sequence[Geometry | dict] | None = None,
        target_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[np.ndarray]:
        """Logits -> probability maps (float32 in [0, 1]) in the original image geometry: (H, W) per image for one
        label, (L, H, W) for several.

        With ``geometries`` (from `preprocess`) crop, resize and padding are undone exactly; outside the crop the
        probability is 0. With only ``target_sizes`` the whole canvas is resized, as transformers processors do.
        """
        return self._to_original(self._logits_numpy(outputs), geometries, target_sizes, _sigmoid)

    def post_process_maps(self, maps: Any, geometries: Sequence[Geometry | dict]) -> list[np.ndarray]:
        """Any per-pixel maps on the model canvas (N, L, H, W), e.g. an uncertainty, mapped back into the original
        image geometry like the probabilities (0 outside the crop)."""
        return self._to_original(self._logits_numpy(maps), geometries, None, lambda v: v)

    @staticmethod
    def _to_original(values: np.ndarray, geometries, target_sizes, fn) -> list[np.ndarray]:
        n, n_labels = values.shape[:2]
        if geometries is None:
            if target_sizes is None:
                return [fn(values[i, 0] if n_labels == 1 else values[i]) for i in range(n)]
            geometries = [
                Geometry(h, w, (0, 0, w, h), tuple(values.shape[2:]), (0, 0), tuple(values.shape[2:]))
                for h, w in target_sizes
            ]
        if len(geometries) != n:
            raise ValueError(f"got {n} predictions but {len(geometries)} geometries")
        out_maps = []
        for i, geo in enumerate(geometries):
            geo = Geometry(**geo) if isinstance(geo, dict) else geo
            top, left = geo.offset
            rh, rw = geo.resized
            x0, y0, x1, y1 = geo.crop
            out = np.zeros((n_labels, geo.orig_height, geo.orig_width), np.float32)
            for c in range(n_labels):
                region = values[i, c, top : top + rh, left : left + rw]
                out[c, y0:y1, x0:x1] = fn(cv2.resize(region, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR))
            out_maps.append(out[0] if n_labels == 1 else out)
        return out_maps

    def masks_from_probabilities(
        self,
        label_probabilities: dict[str, np.ndarray],
        threshold: float | None = None,
        min_fraction: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Per label: uint8 0/1 mask of the probability above the label's `mask_threshold` (or ``threshold`` for
        every label), without connected components smaller than its `min_mask_fraction` of the image (or
        ``min_fraction`` for every label; 0 keeps all)."""
        masks = {}
        for label, prob in label_probabilities.items():
            frac = self.min_mask_fraction.get(label, 0.0) if min_fraction is None else min_fraction
            masks[label] = drop_small_components(
                (prob > self.threshold_for(label, threshold)).astype(np.uint8), frac * prob.size
            )
        return masks

    def post_process_semantic_segmentation(
        self,
        outputs: Any,
        target_sizes: Sequence[tuple[int, int]] | None = None,
        geometries: Sequence[Geometry | dict] | None = None,
        threshold: float = 0.5,
    ) -> list[np.ndarray]:
        """Logits -> uint8 0/1 masks at the original image size, (H, W) or (L, H, W) (see `post_process_logits`)."""
        return [(p > threshold).astype(np.uint8) for p in self.post_process_logits(outputs, geometries, target_sizes)]
