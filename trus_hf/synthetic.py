"""Synthetic transverse TRUS B-mode phantoms with known lesion and gland masks.

No real TRUS data ships with trus-hf, so tests, demos and benchmarks use these phantoms. The image formation follows
the physics loosely but honestly:

1. tissue echogenicity is defined in Cartesian space (rectal wall, gland with a brighter capsule, hypoechoic
   lesions mostly in the posterior peripheral zone, calcifications);
2. it is sampled on a polar (depth x angle) grid, where complex Gaussian scatterers give Rayleigh-distributed
   amplitudes that an anisotropic point-spread function (short axially, long laterally) blurs into speckle;
3. depth attenuation with time-gain compensation, acoustic shadows behind calcifications, log compression;
4. scan conversion back to a fan-shaped Cartesian image with the probe at the bottom.

Example:
    >>> from trus_hf.synthetic import generate_phantom
    >>> ph = generate_phantom(seed=0, size=(256, 256))
    >>> ph.image.shape, ph.image.dtype, ph.lesion_mask.shape
    ((256, 256), dtype('uint8'), (256, 256))
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = ["Phantom", "PhantomConfig", "generate_phantom", "write_phantom_dataset"]


@dataclass(frozen=True)
class PhantomConfig:
    """Knobs of the phantom generator.

    Args:
        lesion_contrast: echogenicity of a lesion relative to the gland (0 = anechoic, 1 = invisible). Lower is easier.
        max_lesions: lesions are drawn uniformly from 0..max_lesions, so empty lesion masks occur.
        calcification_prob: probability of 1-3 calcifications with acoustic shadows.
        fan_half_angle_deg: half opening angle of the sector.
        speckle_psf: (axial, lateral) Gaussian sigma of the point-spread function, in polar grid cells.
        polar_grid: (depth samples, angle samples) of the polar image before scan conversion.
    """

    lesion_contrast: float = 0.45
    max_lesions: int = 2
    calcification_prob: float = 0.3
    fan_half_angle_deg: float = 58.0
    speckle_psf: tuple[float, float] = (0.8, 1.4)
    polar_grid: tuple[int, int] = (320, 256)


@dataclass
class Phantom:
    """One synthetic frame: ``image`` (H, W) uint8 and masks (H, W) uint8 with values 0/1."""

    image: np.ndarray
    lesion_mask: np.ndarray
    gland_mask: np.ndarray
    fan_mask: np.ndarray
    seed: int
    n_lesions: int
    meta: dict = field(default_factory=dict)


def _radial_shape(rng: np.random.Generator, n_harmonics: int, roughness: float) -> tuple[np.ndarray, np.ndarray]:
    """Random Fourier coefficients of an irregular closed boundary r(phi) = 1 + sum a_k cos(k phi + p_k)."""
    amps = rng.normal(0.0, roughness, n_harmonics) / np.arange(1, n_harmonics + 1)
    phases = rng.uniform(0.0, 2 * np.pi, n_harmonics)
    return amps, phases


def _inside(x, y, cx, cy, rx, ry, rot, amps, phases):
    """Signed radial coordinate: < 1 inside the irregular ellipse-like shape.

    The boundary 1 + sum_k a_k cos(k phi + p_k) is evaluated as Re(sum_k a_k e^{i p_k} z^k) with z = e^{i phi} by
    Horner's rule: a few complex multiply-adds per point instead of an arctan and K cosines."""
    dx, dy = x - cx, y - cy
    c, s = np.cos(rot), np.sin(rot)
    u = (dx * c + dy * s) / rx
    v = (-dx * s + dy * c) / ry
    r = np.sqrt(u * u + v * v)
    z = (u + 1j * v).astype(np.complex64) / np.maximum(r, 1e-12).astype(np.float32)
    coeffs = (np.asarray(amps) * np.exp(1j * np.asarray(phases))).astype(np.complex64)
    acc = np.full(z.shape, coeffs[-1], np.complex64)
    for ck in coeffs[-2::-1]:
        acc = acc * z + ck
    boundary = 1.0 + (acc * z).real
    return r / np.maximum(boundary, 0.3)


def _near(x, y, shape: dict, scale: float = 1.6) -> np.ndarray:
    """Points close enough to a shape that it can affect them (bounding box with margin)."""
    reach = scale * max(shape["rx"], shape["ry"]) * (1.0 + float(np.abs(shape["shape"][0]).sum()))
    return (np.abs(x - shape["cx"]) < reach) & (np.abs(y - shape["cy"]) < reach)


class _Scene:
    """Tissue layout in normalised coordinates: x in [0, 1] across, y in [0, 1] down, probe apex below the image."""

    def __init__(self, rng: np.random.Generator, cfg: PhantomConfig):
        self.apex = (0.5, 1.04)
        self.r_probe = 0.10  # probe surface radius from the apex
        self.r_max = 1.0
        # Gland: centred above the probe, wider than deep (transverse view).
        self.gland = dict(
            cx=0.5 + rng.uniform(-0.05, 0.05),
            cy=rng.uniform(0.50, 0.58),
            rx=rng.uniform(0.22, 0.30),
            ry=rng.uniform(0.16, 0.22),
            rot=rng.uniform(-0.15, 0.15),
        )
        self.gland_shape = _radial_shape(rng, 6, 0.06)
        self.gland_echo = rng.uniform(0.55, 0.75)
        self.bg_echo = rng.uniform(0.35, 0.5)
        self.transition_echo = self.gland_echo * rng.uniform(0.85, 1.05)
        n_les = int(rng.integers(0, cfg.max_lesions + 1))
        self.lesions = []
        g = self.gland
        for _ in range(n_les):
            # Peripheral zone: posterior (towards the probe, larger y) and lateral parts of the gland.
            ang = rng.uniform(0.15 * np.pi, 0.85 * np.pi) if rng.random() < 0.8 else rng.uniform(-np.pi, np.pi)
            rad = rng.uniform(0.45, 0.7)
            cx = g["cx"] + rad * g["rx"] * np.cos(ang)
            cy = g["cy"] + rad * g["ry"] * np.sin(ang)
            size = rng.uniform(0.06, 0.10)
            self.lesions.append(
                dict(
                    cx=cx,
                    cy=cy,
                    rx=size * rng.uniform(0.8, 1.3),
                    ry=size * rng.uniform(0.7, 1.1),
                    rot=rng.uniform(-np.pi, np.pi),
                    shape=_radial_shape(rng, 5, 0.12),
                    contrast=float(np.clip(cfg.lesion_contrast * rng.uniform(0.85, 1.15), 0.0, 1.0)),
                )
            )
        self.calcs = []
        if rng.random() < cfg.calcification_prob:
            for _ in range(int(rng.integers(1, 4))):
                ang, rad = rng.uniform(-np.pi, np.pi), rng.uniform(0.1, 0.6)
                self.calcs.append(
                    (
                        g["cx"] + rad * g["rx"] * np.cos(ang),
                        g["cy"] + rad * g["ry"] * np.sin(ang),
                        rng.uniform(0.006, 0.012),
                    )
                )

    def gland_rho(self, x, y):
        g = self.gland
        return _inside(x, y, g["cx"], g["cy"], g["rx"], g["ry"], g["rot"], *self.gland_shape)

    def lesion_inside(self, x, y, gland_rho) -> np.ndarray:
        inside = np.zeros(np.shape(x), bool)
        gland = gland_rho < 0.97
        for les in self.lesions:
            near = _near(x, y, les)
            rho = _inside(x[near], y[near], les["cx"], les["cy"], les["rx"], les["ry"], les["rot"], *les["shape"])
            inside[near] |= (rho < 1.0) & gland[near]
        return inside

    def echogenicity(self, x, y, r) -> np.ndarray:
        echo = np.full(np.shape(x), self.bg_echo, np.float32)
        # Periprostatic fat: faint large-scale texture.
        echo *= 1.0 + 0.15 * np.sin(9.0 * x + 3.0 * y) * np.cos(7.0 * y)
        rho = self.gland_rho(x, y)
        echo = np.where(rho < 1.0, self.gland_echo, echo)
        # Transition zone: slightly different texture in the anterior-central gland.
        echo = np.where(rho < 0.55, self.transition_echo, echo)
        # Capsule: a bright rim at the gland boundary.
        echo += 0.55 * np.exp(-(((rho - 1.0) / 0.035) ** 2))
        for les in self.lesions:
            near = _near(x, y, les)
            lr = _inside(x[near], y[near], les["cx"], les["cy"], les["rx"], les["ry"], les["rot"], *les["shape"])
            soft = 1.0 / (1.0 + np.exp((lr - 1.0) / 0.04))  # smooth edge, like a real infiltrating lesion
            soft = soft * (rho[near] < 0.97)
            echo[near] = echo[near] * (1.0 - soft * (1.0 - les["contrast"]))
        # Rectal wall: bright, layered arc just above the probe surface.
        wall = self.r_probe + 0.035
        echo += 0.9 * np.exp(-(((r - wall) / 0.012) ** 2)) + 0.4 * np.exp(-(((r - wall - 0.03) / 0.01) ** 2))
        for cx, cy, cr in self.calcs:
            echo += 2.5 * np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / cr**2))
        return echo.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _scan_conversion(h: int, w: int, half: float, nr: int, nt: int, ax: float, ay: float, r_probe: float, r_max: float):
    """Scene coordinates of every pixel and its position on the polar grid; depends on geometry only (cached)."""
    scale = min(0.49 / np.sin(half), 0.95)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn = 0.5 + ((xx + 0.5) / w - 0.5) / scale
    yn = ay - (0.985 - (yy + 0.5) / h) / scale
    r = np.hypot(xn - ax, ay - yn)
    t = np.arctan2(xn - ax, ay - yn)
    map_r = ((r - r_probe) / (r_max - r_probe) * (nr - 1)).astype(np.float32)
    map_t = ((t + half) / (2 * half) * (nt - 1)).astype(np.float32)
    fan = (map_r >= 0) & (map_r <= nr - 1) & (map_t >= 0) & (map_t <= nt - 1)
    for arr in (xn, yn, map_r, map_t, fan):
        arr.setflags(write=False)
    return xn, yn, map_r, map_t, fan


def generate_phantom(
    seed: int = 0, size: tuple[int, int] | int = (512, 512), config: PhantomConfig | None = None
) -> Phantom:
    """Generate one deterministic phantom for ``seed`` at ``size`` = (height, width)."""
    cfg = config or PhantomConfig()
    h, w = (size, size) if isinstance(size, int) else size
    if h < 16 or w < 16:
        raise ValueError(f"phantom size must be at least 16x16, got {h}x{w}")
    rng = np.random.default_rng(seed)
    scene = _Scene(rng, cfg)
    ax, ay = scene.apex
    half = np.deg2rad(cfg.fan_half_angle_deg)
    nr, nt = cfg.polar_grid

    # Polar grid: depth from the probe surface to r_max, angle across the sector (0 = straight up).
    rr = np.linspace(scene.r_probe, scene.r_max, nr, dtype=np.float32)[:, None]
    tt = np.linspace(-half, half, nt, dtype=np.float32)[None, :]
    px, py = ax + rr * np.sin(tt), ay - rr * np.cos(tt)
    echo = scene.echogenicity(px, py, np.broadcast_to(rr, px.shape))

    # Speckle: complex Gaussian scatterers -> Rayleigh amplitude after PSF blur.
    scat = (rng.standard_normal((nr, nt)) + 1j * rng.standard_normal((nr, nt))).astype(np.complex64)
    sig_ax, sig_lat = cfg.speckle_psf
    field_re = cv2.GaussianBlur((scat.real * echo).astype(np.float32), (0, 0), sigmaX=sig_lat, sigmaY=sig_ax)
    field_im = cv2.GaussianBlur((scat.imag * echo).astype(np.float32), (0, 0), sigmaX=sig_lat, sigmaY=sig_ax)
    env = np.sqrt(field_re**2 + field_im**2)

    # Acoustic shadows: everything deeper than a calcification along its beam is attenuated.
    for cx, cy, cr in scene.calcs:
        r_c = np.hypot(cx - ax, ay - cy)
        t_c = np.arctan2(cx - ax, ay - cy)
        beam = np.exp(-(((tt - t_c) / (cr / max(r_c, 1e-3) * 1.2)) ** 2))
        env *= 1.0 - 0.6 * beam * (rr > r_c + cr)

    # Attenuation with imperfect time-gain compensation, then log compression to 8 bits.
    depth = (rr - scene.r_probe) / (scene.r_max - scene.r_probe)
    gain = np.exp(-rng.uniform(0.6, 1.2) * depth) * (1.0 + rng.uniform(0.2, 0.5) * depth)
    env = env * gain * rng.uniform(0.9, 1.1)
    env = env / (np.percentile(env, 99.5) + 1e-6)
    polar = np.clip(1.0 + np.log10(np.clip(env, 1e-3, None)) / 1.6, 0.0, 1.0)  # ~32 dB dynamic range

    # Scan conversion: for every Cartesian pixel, where does it sit on the polar grid? Pixels map into scene units
    # with a scale that makes the whole sector fit the frame (probe at the bottom centre, black outside the fan).
    xn, yn, map_r, map_t, fan = _scan_conversion(h, w, float(half), nr, nt, ax, ay, scene.r_probe, scene.r_max)
    image = cv2.remap(
        polar.astype(np.float32),
        map_t,
        map_r,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    image = np.where(fan, image, 0.0)
    image = (image * 255.0 + 0.5).astype(np.uint8)

    # Masks: evaluated only inside the gland's bounding box (lesions lie inside the gland by construction).
    lesion = np.zeros((h, w), np.uint8)
    gland = np.zeros((h, w), np.uint8)
    g = scene.gland
    reach = 1.5 * max(g["rx"], g["ry"])
    cols = np.nonzero(np.abs(xn[0] - g["cx"]) < reach)[0]
    rows = np.nonzero(np.abs(yn[:, 0] - g["cy"]) < reach)[0]
    if cols.size and rows.size:
        win = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        gx, gy = xn[win], yn[win]
        g_rho = scene.gland_rho(gx, gy)
        gland[win] = (g_rho < 1.0) & fan[win]
        lesion[win] = scene.lesion_inside(gx, gy, g_rho) & fan[win]
    meta = {
        "seed": seed,
        "lesion_contrast": cfg.lesion_contrast,
        "n_lesions": len(scene.lesions),
        "n_calcifications": len(scene.calcs),
    }
    return Phantom(
        image=image,
        lesion_mask=lesion,
        gland_mask=gland,
        fan_mask=fan.astype(np.uint8),
        seed=seed,
        n_lesions=len(scene.lesions),
        meta=meta,
    )


def write_phantom_dataset(
    out_dir: str | Path,
    n: int,
    size: tuple[int, int] | int = (512, 512),
    seed: int = 0,
    config: PhantomConfig | None = None,
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
    with open(out / "metadata.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return out
