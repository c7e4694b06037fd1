"""B-mode image formation by the convolution model (Gao et al. 2009; ../shared/PHANTOMS.md of the project).

1. An acquisition grid along the beams (depth x beam), fine enough that the point-spread function spans about three
   samples in each direction (never finer than half an output pixel).
2. Tissue maps (amplitude, attenuation, transmission loss) sampled on a coarser grid and interpolated.
3. Scatterers: complex Gaussian I/Q samples times the amplitude (fully developed, Rayleigh speckle), times a Gamma
   texture when there are few scatterers per resolution cell (partially developed speckle). Optionally acoustic
   clutter (``clutter_prob``): more scatterers carrying the echo of the tissue around each point, spread and some dB
   down, which fills lesions, cysts and shadows in as side lobes and reverberation do.
4. Point-spread function: separable Gaussian, axial sigma from the centre frequency and bandwidth, lateral sigma
   from wavelength x F-number at the focus and widening away from it, in depth bands blended linearly (a blend of
   two convolutions of the same scatterers is a convolution with the blended kernel).
5. Per beam: cumulative two-way attenuation and transmission loss (shadows behind calcifications and the urethra,
   enhancement behind fluid), receive noise, time-gain compensation with random slider ripple, gain.
6. Envelope, log compression to the dynamic range, a scanner gray map; scan conversion with ``cv2.remap``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from .anatomy import Anatomy
from .config import FrameSettings

__all__ = ["BeamGrid", "Layout", "beam_grid", "envelope", "layout_for", "log_compress", "scan_convert", "to_scan_lines"]

_NEPER_PER_DB = 1.0 / 8.686


@dataclass(frozen=True)
class BeamGrid:
    """Samples along the beams: row i at depth ``(i + 0.5) * dr`` below the probe surface, column j on beam j."""

    linear: bool
    rp: float  # probe radius (convex) or the y of the probe surface (linear), mm
    depth: float  # mm
    half: float  # half sector angle (rad, convex) or half aperture width (mm, linear)
    nr: int
    nt: int

    @property
    def dr(self) -> float:
        return self.depth / self.nr

    @property
    def dt(self) -> float:
        """Beam spacing: rad (convex) or mm (linear)."""
        return 2 * self.half / self.nt

    def points(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scene coordinates (x, y in mm) of fractional grid positions (broadcast)."""
        r = self.rp + (np.asarray(rows, np.float32) + 0.5) * self.dr
        t = -self.half + (np.asarray(cols, np.float32) + 0.5) * self.dt
        if self.linear:
            return np.broadcast_to(t, np.broadcast(r, t).shape), np.broadcast_to(r, np.broadcast(r, t).shape)
        return r * np.sin(t), r * np.cos(t)

    def lateral_spacing_mm(self, rows: np.ndarray) -> np.ndarray:
        r = self.rp + (np.asarray(rows, np.float32) + 0.5) * self.dr
        return np.full_like(r, self.dt) if self.linear else r * self.dt


@dataclass(frozen=True)
class Layout:
    """Where the scene lands in the output image: pixel (u, v) shows x = cx + (u + .5 - uc) * mm_per_px and
    y = cy - (v + .5 - vc) * mm_per_px (the probe at the bottom), inside ``region`` (x0, y0, x1, y1) only."""

    height: int
    width: int
    mm_per_px: float
    cx: float
    cy: float
    uc: float
    vc: float
    region: tuple[int, int, int, int]


def _fan_box(s: FrameSettings) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) of the imaged sector in scene mm."""
    rp, r_max = s.probe_radius_mm, s.probe_radius_mm + s.depth_mm
    if s.linear_probe:
        half = _linear_half_width(s)
        return -half, half, rp, r_max
    half = np.deg2rad(s.sector_deg / 2)
    x = r_max * np.sin(min(half, np.pi / 2))
    return -x, x, rp * np.cos(half), r_max


def _linear_half_width(s: FrameSettings) -> float:
    return 0.5 * float(np.clip(s.depth_mm * 0.9, 30.0, 60.0))


def layout_for(s: FrameSettings, size: tuple[int, int], rng: np.random.Generator) -> Layout:
    """Fit the sector into the frame (or, letterboxed, into a smaller screen region), zoomed and shifted a little."""
    h, w = size
    if s.letterbox:
        rw, rh = int(w * rng.uniform(0.55, 0.85)), int(h * rng.uniform(0.6, 0.9))
        x0, y0 = int(rng.uniform(0, w - rw)), int(rng.uniform(0, h - rh))
    else:
        mx, my = int(w * rng.uniform(0.0, 0.05)), int(h * rng.uniform(0.0, 0.05))
        x0, y0, rw, rh = mx, my, w - 2 * mx, h - 2 * my
    xa, xb, ya, yb = _fan_box(s)
    mm = max((xb - xa) / max(rw, 1), (yb - ya) / max(rh, 1)) / s.zoom
    jitter = abs(s.zoom - 1.0) * 0.5
    cx = (xa + xb) / 2 + rng.uniform(-jitter, jitter) * (xb - xa) * 0.3
    cy = (ya + yb) / 2 + rng.uniform(-jitter, jitter) * (yb - ya) * 0.3 - max(0.0, s.zoom - 1.0) * (yb - ya) * 0.15
    return Layout(h, w, float(mm), float(cx), float(cy), x0 + rw / 2, y0 + rh / 2, (x0, y0, x0 + rw, y0 + rh))


@functools.lru_cache(maxsize=16)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    uu, vv = np.meshgrid(np.arange(w, dtype=np.float32) + 0.5, np.arange(h, dtype=np.float32) + 0.5)
    uu.setflags(write=False)
    vv.setflags(write=False)
    return uu, vv


def pixel_coordinates(lay: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scene coordinates (mm) of every output pixel and the mask of pixels inside the screen region."""
    uu, vv = _pixel_grid(lay.height, lay.width)
    x = lay.cx + (uu - lay.uc) * lay.mm_per_px
    y = lay.cy - (vv - lay.vc) * lay.mm_per_px
    x0, y0, x1, y1 = lay.region
    region = (uu >= x0) & (uu < x1) & (vv >= y0) & (vv < y1)
    return x, y, region


def beam_grid(s: FrameSettings, mm_per_px: float) -> BeamGrid:
    """The acquisition grid for these settings: about three samples per PSF width, never below half a pixel."""
    ax_fwhm = 2.355 * s.axial_sigma_mm
    depths = np.linspace(0.0, s.depth_mm, 32)
    lat_fwhm = 2.355 * float(s.lateral_sigma_mm(depths).min())
    dr = max(ax_fwhm / 3.0, mm_per_px / 2.0)
    dl = max(lat_fwhm / 3.0, mm_per_px / 2.0)
    nr = int(np.clip(np.ceil(s.depth_mm / dr), 32, 1600))
    if s.linear_probe:
        half = _linear_half_width(s)
        nt = int(np.clip(np.ceil(2 * half / dl), 32, 1400))
        return BeamGrid(True, s.probe_radius_mm, s.depth_mm, half, nr, nt)
    half = np.deg2rad(s.sector_deg / 2)
    nt = int(np.clip(np.ceil(2 * half * (s.probe_radius_mm + s.depth_mm) / dl), 32, 1400))
    return BeamGrid(False, s.probe_radius_mm, s.depth_mm, float(half), nr, nt)


def _gauss_kernel(sigma: float) -> np.ndarray:
    sigma = max(float(sigma), 0.3)
    radius = max(1, int(np.ceil(3.0 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    return k / np.sqrt((k**2).sum())  # unit energy: the speckle's mean level does not depend on the PSF size


def _complex_gaussian(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Standard normal I and Q samples as a (H, W, 2) float32 array, by the Box-Muller transform (numpy uniforms,
    OpenCV's vectorised polar-to-Cartesian): several times faster than numpy's normal sampler for these sizes."""
    u = rng.random((2, *shape), dtype=np.float32)
    magnitude = np.sqrt(np.float32(-2.0) * np.log(np.float32(1.0) - u[0]))
    i, q = cv2.polarToCart(magnitude, u[1] * np.float32(2.0 * np.pi))
    return cv2.merge([i, q])


def _lateral_band(strip: np.ndarray, sigma_cells: float, k_ax: np.ndarray) -> np.ndarray:
    """PSF filtering of one depth band. Where the lateral PSF spans many beams (near the probe the beams are dense),
    the white scatterers are first averaged over groups of beams (variance kept), filtered with the narrower kernel
    and interpolated back: the result is smooth at that scale, so nothing is lost and the kernel stays short."""
    h, nt = strip.shape[:2]
    f = max(1, int(sigma_cells // 2.0))
    if f == 1:
        return cv2.sepFilter2D(strip, cv2.CV_32F, _gauss_kernel(sigma_cells), k_ax, borderType=cv2.BORDER_REFLECT)
    n = -(-nt // f)
    padded = cv2.copyMakeBorder(strip, 0, 0, 0, n * f - nt, cv2.BORDER_REFLECT) if n * f != nt else strip
    coarse = cv2.resize(padded, (n, h), interpolation=cv2.INTER_AREA) * np.float32(np.sqrt(f))  # group means
    coarse = cv2.sepFilter2D(coarse, cv2.CV_32F, _gauss_kernel(sigma_cells / f), k_ax, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(coarse, (n * f, h), interpolation=cv2.INTER_LINEAR)[:, :nt]


def iq_magnitude(field: np.ndarray) -> np.ndarray:
    """The envelope sqrt(I^2 + Q^2) of an (H, W, 2) float32 I/Q array, the same bits wherever the array lies in memory.
    Not cv2.magnitude: on these interleaved views its last bit depends on the buffer's address, so one seed gave one of
    two images depending on where the process's buffers lay; numpy's square, add and sqrt are exactly rounded."""
    square = np.square(field)
    return np.sqrt(square[..., 0] + square[..., 1])


def _psf_filter(field: np.ndarray, grid: BeamGrid, s: FrameSettings, bands: int = 8) -> np.ndarray:
    """Separable Gaussian PSF: axial sigma fixed, lateral sigma per depth band (8 bands; neighbouring bands filter
    the same scatterers with kernels a few percent apart, so no seam shows)."""
    nr = grid.nr
    k_ax = _gauss_kernel(s.axial_sigma_mm / grid.dr)
    margin = len(k_ax)
    edges = np.linspace(0, nr, bands + 1).round().astype(int)
    out = np.empty_like(field)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        centre = (lo + hi) / 2.0
        sigma = float(s.lateral_sigma_mm((centre + 0.5) * grid.dr) / grid.lateral_spacing_mm(centre))
        a, b = max(0, lo - margin), min(nr, hi + margin)
        out[lo:hi] = _lateral_band(field[a:b], sigma, k_ax)[lo - a : hi - a]
    return out


def envelope(
    anatomy: Anatomy | None, s: FrameSettings, grid: BeamGrid, rng: np.random.Generator, maps_oversampling: int = 4
) -> np.ndarray:
    """The TGC-compensated echo envelope on the beam grid (float32, nr x nt). ``anatomy=None``: homogeneous tissue
    of unit amplitude and the nominal attenuation (speckle measurements)."""
    nr, nt = grid.nr, grid.nt
    # 2. tissue maps on a coarse grid; the two-way attenuation accumulates along each beam there (it is smooth along
    # the beam), then both are interpolated onto the beam grid
    nrc, ntc = max(16, nr // maps_oversampling), max(16, nt // maps_oversampling)
    if anatomy is None:
        amp = np.ones((nr, nt), np.float32)
        per_mm = np.full((nrc, ntc), s.attenuation_db_cm_mhz, np.float32) * np.float32(
            s.frequency_mhz * 0.1 * _NEPER_PER_DB
        )
    else:
        rows = (np.arange(nrc, dtype=np.float32)[:, None] + 0.5) * nr / nrc - 0.5
        cols = (np.arange(ntc, dtype=np.float32)[None, :] + 0.5) * nt / ntc - 0.5
        x, y = grid.points(rows, cols)
        amp_c, att, loss = anatomy.maps(x, y)
        amp = cv2.resize(amp_c, (nt, nr), interpolation=cv2.INTER_LINEAR)
        per_mm = att * np.float32(s.frequency_mhz * 0.1 * _NEPER_PER_DB) + loss
    two_way = np.cumsum(per_mm, axis=0) * np.float32(2.0 * grid.dr * nr / nrc)
    gain = cv2.resize(cv2.exp(-two_way), (nt, nr), interpolation=cv2.INTER_LINEAR)
    # 3. scatterers: I and Q as two channels; few scatterers per cell -> partially developed speckle, through a
    # log-normal approximation of the Gamma texture (same mean and variance of the intensity modulation)
    raw = _complex_gaussian(rng, (nr, nt))
    texture = amp
    if s.scatterers_per_cell < 20:
        sd = np.float32(np.sqrt(np.log1p(1.0 / s.scatterers_per_cell)))
        z = np.roll(raw[..., 0], nr // 3, axis=0)  # other samples than the scatterers': independent
        texture = amp * cv2.exp(z * (sd / 2) - sd * sd / 4)
    field = raw * texture[..., None]
    if s.clutter_db is not None:
        # 3b. acoustic clutter (side lobes, reverberation between the probe and the rectal wall, off-axis echoes):
        # the echoes of the tissue around each point, spread over ``clutter_mm`` and ``clutter_db`` below it, added
        # as independent scatterers. It fills dark regions (lesions, cysts, vessels) and lowers their contrast, as in
        # vivo and in single-transmit simulations: a lesion of amplitude ratio c, small against the spread, shows
        # sqrt((c^2 + k) / (1 + k)), k = 10^(clutter_db / 10). In homogeneous tissue it is one more speckle of the
        # same grain (still Rayleigh).
        power = np.ones((nrc, ntc), np.float32) if anatomy is None else amp_c * amp_c
        sigma_r = s.clutter_mm / (grid.dr * nr / nrc)
        sigma_t = s.clutter_mm / (float(grid.lateral_spacing_mm(np.float32(nr / 2))) * nt / ntc)
        spread = cv2.GaussianBlur(power, (0, 0), sigmaX=sigma_t, sigmaY=sigma_r, borderType=cv2.BORDER_REFLECT)
        level = cv2.resize(cv2.sqrt(spread), (nt, nr), interpolation=cv2.INTER_LINEAR)
        level *= np.float32(10 ** (s.clutter_db / 20.0))
        field += np.roll(raw, (2 * nr // 3, nt // 3), axis=(0, 1)) * level[..., None]  # other samples again
    # 4. point-spread function
    field = _psf_filter(field, grid, s)
    # 5. attenuation and transmission loss (two-way), receive noise, TGC
    field *= gain[..., None]
    noise = np.float32(10 ** (s.noise_db / 20.0))
    field += noise * np.roll(raw, (nr // 2, nt // 2), axis=(0, 1))  # white receive noise: other samples again
    env = iq_magnitude(field)
    depth = (np.arange(nr, dtype=np.float32) + 0.5) * grid.dr
    nominal = s.attenuation_db_cm_mhz * s.frequency_mhz * 0.1 * _NEPER_PER_DB
    tgc_db = 8.686 * 2 * s.tgc_compensation * nominal * depth
    if s.tgc_ripple_db > 0:
        knots = rng.uniform(-s.tgc_ripple_db, s.tgc_ripple_db, 8)
        tgc_db = tgc_db + np.interp(depth, np.linspace(0, s.depth_mm, 8), knots)
    env *= (10 ** ((tgc_db + s.gain_db) / 20.0)).astype(np.float32)[:, None]
    return env


def to_scan_lines(
    env: np.ndarray, grid: BeamGrid, lines: int, samples: int | None = None
) -> tuple[np.ndarray, BeamGrid]:
    """Keep ``lines`` acquired lines of the beam grid and ``samples`` samples along each (as a scanner acquires a few
    hundred lines over the sector and stores a few hundred samples per line, and its scan conversion interpolates
    between them): the envelope at those positions and their grid."""
    lines = min(int(lines), grid.nt)
    samples = grid.nr if samples is None else min(int(samples), grid.nr)
    if lines == grid.nt and samples == grid.nr:
        return env, grid
    coarse = BeamGrid(grid.linear, grid.rp, grid.depth, grid.half, samples, lines)
    cols = np.round((np.arange(lines) + 0.5) * grid.nt / lines - 0.5).astype(int)
    rows = np.round((np.arange(samples) + 0.5) * grid.nr / samples - 0.5).astype(int)
    return np.ascontiguousarray(env[np.ix_(rows, cols)]), coarse


def log_compress(env: np.ndarray, s: FrameSettings, rng: np.random.Generator) -> np.ndarray:
    """Envelope -> display values in [0, 1]: dB re a reference level, clipped to the dynamic range, then a scanner
    gray map (a random gamma)."""
    db = cv2.log(np.maximum(env, np.float32(1e-6))) * np.float32(20.0 / np.log(10.0))
    sample = db[:: max(1, db.shape[0] // 64), :: max(1, db.shape[1] // 64)]
    ref = float(np.percentile(sample, 99.0)) + 3.0 - s.gain_db  # the gain knob moves the image, not the reference
    out = np.clip((db - np.float32(ref)) * np.float32(1.0 / s.dynamic_range_db) + np.float32(1.0), 0.0, 1.0)
    gamma = float(rng.uniform(0.8, 1.3))
    return cv2.pow(out, gamma)


def scan_convert(
    polar: np.ndarray, grid: BeamGrid, x: np.ndarray, y: np.ndarray, region: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Resample the beam-grid image at the output pixels (scene mm): the image and the mask of the imaged sector."""
    if grid.linear:
        r, t = y, x
    else:
        r, t = np.hypot(x, y), np.arctan2(x, y)
    map_r = ((r - grid.rp) / grid.dr - 0.5).astype(np.float32)
    map_t = ((t + grid.half) / grid.dt - 0.5).astype(np.float32)
    fan = (map_r >= 0) & (map_r <= grid.nr - 1) & (map_t >= 0) & (map_t <= grid.nt - 1) & region
    image = cv2.remap(
        polar.astype(np.float32),
        map_t,
        map_r,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    image[~fan] = 0.0
    return image, fan
