"""Training augmentations, defined once (albumentations): geometric plus ultrasound-plausible intensity changes.

They act on the processor's cached (H, W) float image in [0, 1] and its mask, before `TrusImageProcessor.finalize`.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np

__all__ = ["AcousticShadow", "build_augmentations", "preview_augmentations"]


class AcousticShadow(A.ImageOnlyTransform):
    """Darken a radial band behind a random depth, as a calcification or gas shadow does in a fan image with the
    probe at the bottom centre. Written here because albumentations' RandomShadow draws arbitrary polygons, which
    look nothing like ultrasound shadows."""

    def __init__(
        self, width_deg: tuple[float, float] = (2.0, 8.0), strength: tuple[float, float] = (0.3, 0.7), p: float = 0.5
    ):
        super().__init__(p=p)
        self.width_deg, self.strength = width_deg, strength

    def get_params_dependent_on_data(self, params, data):
        rng = self.py_random
        return {
            "angle": rng.uniform(-50, 50),
            "width": rng.uniform(*self.width_deg),
            "start": rng.uniform(0.2, 0.7),
            "gain": 1.0 - rng.uniform(*self.strength),
        }

    def apply(self, img, angle=0.0, width=4.0, start=0.5, gain=0.5, **params):
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        dx, dy = xx - w / 2, h - yy
        theta = np.degrees(np.arctan2(dx, dy))
        radius = np.hypot(dx, dy) / h
        band = np.exp(-(((theta - angle) / width) ** 2)) * (radius > start)
        factor = 1.0 - (1.0 - gain) * band
        return (img * (factor if img.ndim == 2 else factor[..., None])).astype(img.dtype)


def build_augmentations(seed: int | None = None, strength: float = 1.0) -> A.Compose:
    """Flip, small affine, elastic; gamma, brightness/contrast (gain), noise, blur and acoustic shadow bands.

    ``strength`` scales every range (1 = the defaults). Above 1 it is domain randomisation for models meant for
    other scanners: wider zoom, gain and gamma, and two more transforms, a coarser speckle grain (downscale and
    upscale, as fewer scan lines give) and multiplicative speckle-like noise; 1 leaves the pipeline as it was, so
    short trainings on one scanner are not slowed by changes they will not meet."""
    s = float(strength)
    if s <= 0:
        raise ValueError(f"augmentation strength must be positive, got {strength}")
    blur = 3 + 2 * max(1, round(s))  # odd kernel sizes: 5 at strength 1, 7 at 2
    transforms = [
        A.HorizontalFlip(p=0.5),
        A.Affine(
            scale=(1 - 0.1 * s, 1 + 0.1 * s),
            rotate=(-10 * s, 10 * s),
            translate_percent=(-0.05 * s, 0.05 * s),
            border_mode=0,
            p=0.7,
        ),
        A.ElasticTransform(alpha=20 * s, sigma=6, p=0.2),
        A.RandomGamma(gamma_limit=(100 - 20 * s, 100 + 20 * s), p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.15 * s, contrast_limit=0.15 * s, p=0.5),
        A.GaussNoise(std_range=(0.01, 0.04 * s), p=0.3),
        A.GaussianBlur(blur_limit=(3, blur), p=0.2),
        AcousticShadow(p=0.2),
    ]
    if s > 1:
        transforms += [
            A.Downscale(scale_range=(1 / (1 + 0.5 * s), 0.9), p=0.25),
            A.MultiplicativeNoise(multiplier=(1 - 0.1 * s, 1 + 0.1 * s), elementwise=True, p=0.2),
        ]
    return A.Compose(transforms, seed=seed)


def preview_augmentations(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    n: int,
    out_path: str | Path,
    seed: int = 0,
    strength: float = 1.0,
) -> Path:
    """Write a PNG grid: ``n`` augmented samples (cycling through ``images``) with their mask contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aug = build_augmentations(seed=seed, strength=strength)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        ax.axis("off")
        if i >= n:
            continue
        out = aug(image=images[i % len(images)].astype(np.float32), mask=masks[i % len(masks)])
        ax.imshow(out["image"], cmap="gray", vmin=0, vmax=1)
        if out["mask"].any():
            ax.contour(out["mask"], levels=[0.5], colors="lime", linewidths=1)
        ax.set_title(f"sample {i}", fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
    return out_path
