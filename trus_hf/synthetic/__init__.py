"""Synthetic transverse TRUS B-mode frames with known gland and lesion masks, made the way a scanner makes them.

No real TRUS data ships with trus-hf, so tests, demos, benchmarks and the bundled models use these phantoms. A frame
is described in physical units (`PhantomConfig`: MHz, mm, dB; every knob a range, drawn per frame), its tissue laid
out in millimetres (`anatomy`), formed by the convolution model on a beam grid and scan-converted (`formation`), and
dressed as a scanner export (`overlays`: text, depth scale, calipers, letterboxing, JPEG).

Example:
    >>> from trus_hf.synthetic import generate_phantom
    >>> ph = generate_phantom(seed=0, size=(256, 256))
    >>> ph.image.shape, ph.image.dtype, ph.lesion_mask.shape
    ((256, 256), dtype('uint8'), (256, 256))
    >>> generate_phantom(0, 128, "clean").meta["frequency_mhz"]
    7.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..fileio import write_jsonl
from .anatomy import Anatomy
from .config import PRESETS, FrameSettings, PhantomConfig, draw_settings, resolve_config
from .formation import beam_grid, envelope, layout_for, log_compress, pixel_coordinates, scan_convert, to_scan_lines
from .overlays import add_display, jpeg

__all__ = ["PRESETS", "FrameSettings", "Phantom", "PhantomConfig", "generate_phantom", "write_phantom_dataset"]


@dataclass
class Phantom:
    """One synthetic frame: ``image`` (H, W) uint8 and masks (H, W) uint8 with values 0/1. ``meta`` holds every
    setting the frame was drawn with (physical units) and what it contains."""

    image: np.ndarray
    lesion_mask: np.ndarray
    gland_mask: np.ndarray
    fan_mask: np.ndarray
    seed: int
    n_lesions: int
    meta: dict = field(default_factory=dict)


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def generate_phantom(
    seed: int = 0, size: tuple[int, int] | int = (512, 512), config: PhantomConfig | str | None = None
) -> Phantom:
    """Generate one deterministic phantom for ``seed`` at ``size`` = (height, width); ``config`` is a
    `PhantomConfig` or a preset name (``default``, ``clean``, ``hard``, ``wide``, ``shifted``)."""
    cfg = resolve_config(config)
    h, w = (size, size) if isinstance(size, int) else size
    if h < 16 or w < 16:
        raise ValueError(f"phantom size must be at least 16x16, got {h}x{w}")
    rng = np.random.default_rng(seed)
    s = draw_settings(rng, cfg)
    anatomy = Anatomy(rng, cfg, s)
    lay = layout_for(s, (h, w), rng)
    acquisition = beam_grid(s, lay.mm_per_px)
    env, grid = to_scan_lines(envelope(anatomy, s, acquisition, rng), acquisition, s.scan_lines, s.line_samples)
    polar = log_compress(env, s, rng)
    x, y, region = pixel_coordinates(lay)
    image, fan = scan_convert(polar, grid, x, y, region)
    if s.smoothing:  # scanners' speckle reduction: stronger across the beams than along them
        sx, sy = float(rng.uniform(0.6, 2.5)), float(rng.uniform(0.4, 1.5))
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=sx, sigmaY=sy) * fan
    image = (image * 255.0 + 0.5).astype(np.uint8)
    gland, lesion = anatomy.masks(x, y)
    masks = [(lesion & fan).astype(np.uint8), (gland & fan).astype(np.uint8), fan.astype(np.uint8)]
    if s.probe_at_top:  # some scanners and exports show the probe at the top: flip before the overlays are drawn
        image = np.ascontiguousarray(image[::-1])
        masks = [np.ascontiguousarray(m[::-1]) for m in masks]
    add_display(image, lay, s, rng, _box(masks[1]))
    if s.jpeg_quality is not None:
        image = jpeg(image, s.jpeg_quality)

    def to_px(x_mm: float, y_mm: float) -> list[float]:
        u, v = lay.uc + (x_mm - lay.cx) / lay.mm_per_px - 0.5, lay.vc - (y_mm - lay.cy) / lay.mm_per_px - 0.5
        return [round(u, 2), round(h - 1 - v if s.probe_at_top else v, 2)]

    meta = {
        "seed": seed,
        **s.to_dict(),
        "mm_per_px": round(lay.mm_per_px, 4),
        "beam_grid": [acquisition.nr, acquisition.nt],
        "probe_center_px": to_px(0.0, 0.0),
        "n_lesions": len(anatomy.lesions),
        "lesion_contrasts": [round(c, 3) for _, c, _ in anatomy.lesions],
        "calcifications_px": [to_px(cx, cy) for cx, cy, _, _ in anatomy.calcs],
        "base_slice": anatomy.base_slice,
    }
    return Phantom(
        image=image,
        lesion_mask=masks[0],
        gland_mask=masks[1],
        fan_mask=masks[2],
        seed=seed,
        n_lesions=len(anatomy.lesions),
        meta=meta,
    )


def write_phantom_dataset(
    out_dir: str | Path,
    n: int,
    size: tuple[int, int] | int = (512, 512),
    seed: int = 0,
    config: PhantomConfig | str | None = None,
    target: str = "lesion",
    overwrite: bool = False,
) -> Path:
    """Write ``n`` phantoms as ``images/``, ``masks/`` (0/255 PNG) and an imagefolder ``metadata.jsonl``.

    ``target`` chooses which mask is the label: ``"lesion"`` (default) or ``"gland"``. Each phantom is its own group
    (``case_<seed>``), as if every frame came from a different patient.
    """
    if target not in ("lesion", "gland"):
        raise ValueError(f"target must be 'lesion' or 'gland', got {target!r}")
    out = Path(out_dir)
    if (out / "metadata.jsonl").exists() and not overwrite:
        raise FileExistsError(f"{out / 'metadata.jsonl'} exists; pass overwrite=True (--overwrite) to replace it")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        s = seed + i
        ph = generate_phantom(s, size, config)
        name = f"phantom_{s:05d}.png"
        mask = ph.lesion_mask if target == "lesion" else ph.gland_mask
        cv2.imwrite(str(out / "images" / name), ph.image)
        cv2.imwrite(str(out / "masks" / name), mask * 255)
        rows.append(
            {
                "file_name": f"images/{name}",
                "mask_file_name": f"masks/{name}",
                "group": f"case_{s:05d}",
                "source": "synthetic",
                **ph.meta,
            }
        )
    write_jsonl(out / "metadata.jsonl", rows)
    return out
