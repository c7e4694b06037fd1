"""What scanners and exporters add to a frame: on-screen text, a depth scale, calipers, a biplane icon and a logo,
speckle-reduction smoothing and JPEG compression. The labels never change; the processor's ROI crop must find the
fan despite all of it."""

from __future__ import annotations

import cv2
import numpy as np

from .config import FrameSettings
from .formation import Layout

__all__ = ["add_display", "jpeg"]

_WORDS = [
    "TRUS",
    "BIPLANE",
    "E14C4t",
    "EC9-5",
    "8848",
    "TIS 0.4",
    "MI 0.9",
    "Gen",
    "Res",
    "Pen",
    "THI",
    "2D",
    "Gain",
    "DR",
    "FR",
    "Prostate",
    "Trans",
    "AX",
    "B",
    "PWR 100%",
    "Frq",
    "Map D",
    "SRI II 3",
    "CRI",
]


def _text(rng: np.random.Generator, s: FrameSettings) -> str:
    kind = rng.integers(0, 5)
    if kind == 0:
        return (
            f"{rng.integers(2018, 2027)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} "
            f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}"
        )
    if kind == 1:
        return f"{s.frequency_mhz:.1f}MHz  D{s.depth_mm / 10:.1f}cm  G{50 + s.gain_db:.0f}"
    if kind == 2:
        return f"DR {s.dynamic_range_db:.0f}  FR {rng.integers(12, 40)}Hz"
    return " ".join(rng.choice(_WORDS, int(rng.integers(1, 4))))


def add_display(
    image: np.ndarray,
    lay: Layout,
    s: FrameSettings,
    rng: np.random.Generator,
    gland_box: tuple[int, int, int, int] | None,
) -> np.ndarray:
    """Draw the scanner's overlays into a uint8 frame (in place) and return it."""
    h, w = image.shape
    scale = max(0.3, min(h, w) / 900)
    thick = max(1, int(round(scale * 2)))
    if s.overlays:
        x0, y0, x1, y1 = lay.region
        for _ in range(int(rng.integers(2, 7))):  # text in the corners and the margins, sometimes over the fan
            corner = int(rng.integers(0, 4))
            tx = int(rng.uniform(0.01, 0.25) * w) if corner % 2 == 0 else int(rng.uniform(0.6, 0.8) * w)
            ty = int(rng.uniform(0.03, 0.15) * h) if corner < 2 else int(rng.uniform(0.85, 0.98) * h)
            level = int(rng.integers(140, 256))
            cv2.putText(
                image,
                _text(rng, s),
                (tx, ty),
                cv2.FONT_HERSHEY_SIMPLEX,
                float(scale * rng.uniform(0.8, 1.4)),
                level,
                thick,
                cv2.LINE_AA,
            )
        # depth scale: ticks every centimetre beside the sector
        side = x1 - int(0.03 * w) if rng.random() < 0.5 else x0 + int(0.02 * w)
        cm_px = 10.0 / lay.mm_per_px
        v = lay.vc - (s.probe_radius_mm - lay.cy) / lay.mm_per_px
        if s.probe_at_top:
            v, cm_px = h - 1 - v, -cm_px
        for i in range(int(s.depth_mm // 10) + 1):
            ty = int(v - i * cm_px)
            if 0 <= ty < h:
                cv2.line(image, (side, ty), (side + max(3, int(0.012 * w)), ty), 220, thick)
        # a biplane icon and a gray logo block
        if rng.random() < 0.6:
            cx, cy, r = int(rng.uniform(0.05, 0.95) * w), int(rng.uniform(0.05, 0.2) * h), max(4, int(0.025 * w))
            cv2.circle(image, (cx, cy), r, 200, thick)
            cv2.line(image, (cx - r, cy), (cx + r, cy), 200, thick)
        if rng.random() < 0.4:
            bx, by = int(rng.uniform(0.0, 0.85) * w), int(rng.uniform(0.0, 0.1) * h)
            cv2.rectangle(image, (bx, by), (bx + int(0.12 * w), by + int(0.04 * h)), int(rng.integers(60, 200)), -1)
    if s.calipers and gland_box is not None:  # measurement calipers across the gland, on top of the image
        gx0, gy0, gx1, gy1 = gland_box
        for (ax, ay), (bx, by) in (
            (((gx0, (gy0 + gy1) // 2)), (gx1, (gy0 + gy1) // 2)),
            (((gx0 + gx1) // 2, gy0), ((gx0 + gx1) // 2, gy1)),
        ):
            if rng.random() < 0.7:
                for p in ((ax, ay), (bx, by)):
                    cv2.drawMarker(image, p, 255, cv2.MARKER_CROSS, max(5, int(0.02 * w)), thick)
                n = 12
                for k in range(0, n, 2):
                    p0 = (int(ax + (bx - ax) * k / n), int(ay + (by - ay) * k / n))
                    p1 = (int(ax + (bx - ax) * (k + 0.6) / n), int(ay + (by - ay) * (k + 0.6) / n))
                    cv2.line(image, p0, p1, 230, 1)
    return image


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 gray
        return image
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
