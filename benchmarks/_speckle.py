"""Speckle statistics, measured the same way on the phantoms and on the physics simulator's frames.

- envelope mean/std (Rayleigh, fully developed speckle: 1.91) and the std of the log-compressed envelope (dB);
- speckle size: full width at half maximum of the envelope's autocovariance, axially (rows) and laterally
  (columns), in mm for a patch of known spacing;
- grain of a displayed frame: the same widths in pixels, the median over 32x32 windows inside the fan.
"""

from __future__ import annotations

import numpy as np

__all__ = ["autocov_fwhm", "grain_px", "speckle_stats"]


def _fwhm(profile: np.ndarray) -> float:
    """Full width at half maximum of a centred, peak-normalised autocovariance profile, in samples."""
    m = len(profile) // 2
    k = m
    while k < len(profile) - 1 and profile[k] > 0.5:
        k += 1
    if k == m:
        return 0.0
    frac = (profile[k - 1] - 0.5) / max(profile[k - 1] - profile[k], 1e-12)
    return 2.0 * ((k - 1 - m) + frac)


def autocov_fwhm(patch: np.ndarray) -> tuple[float, float]:
    """(axial, lateral) FWHM of the 2-D autocovariance of ``patch`` in samples (rows = axial, columns = lateral)."""
    a = np.asarray(patch, np.float64)
    a = a - a.mean()
    f = np.fft.fft2(a, s=(2 * a.shape[0], 2 * a.shape[1]))  # zero-padded: no wrap-around
    ac = np.fft.fftshift(np.real(np.fft.ifft2(f * np.conj(f))))
    ac /= ac.max()
    c0, c1 = np.array(ac.shape) // 2
    return _fwhm(ac[:, c1]), _fwhm(ac[c0, :])


def speckle_stats(envelope: np.ndarray, spacing_mm: float) -> dict[str, float]:
    env = np.asarray(envelope, np.float64)
    e = env.ravel()
    ax, lat = autocov_fwhm(env)
    return {
        "envelope_mean_over_std": float(e.mean() / e.std()),
        "log_std_db": float((20 * np.log10(np.maximum(e, 1e-12))).std()),
        "axial_fwhm_mm": ax * spacing_mm,
        "lateral_fwhm_mm": lat * spacing_mm,
    }


def grain_px(
    image: np.ndarray, inside: np.ndarray, window: int = 32, dynamic_range_db: float = 50.0
) -> dict[str, float]:
    """Median speckle grain (axial = vertical, lateral = horizontal FWHM, pixels) of a frame over windows fully
    inside ``inside``. A float envelope is log-compressed first; a uint8 B-mode image is used as it is."""
    img = np.asarray(image, np.float64)
    if image.dtype != np.uint8:
        db = 20 * np.log10(np.maximum(img, 1e-12) / max(img[inside].max(), 1e-12))
        img = np.clip(1 + db / dynamic_range_db, 0, 1) * 255
    ax, lat = [], []
    h, w = img.shape
    for y in range(0, h - window + 1, window):
        for x in range(0, w - window + 1, window):
            if inside[y : y + window, x : x + window].all():
                patch = img[y : y + window, x : x + window]
                if patch.std() > 1:
                    a, b = autocov_fwhm(patch)
                    ax.append(a)
                    lat.append(b)
    if not ax:
        return {"axial_px": float("nan"), "lateral_px": float("nan"), "windows": 0}
    return {"axial_px": float(np.median(ax)), "lateral_px": float(np.median(lat)), "windows": len(ax)}
