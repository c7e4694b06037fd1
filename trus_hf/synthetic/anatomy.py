"""The tissue of a transverse TRUS frame, in millimetres: where each structure is and how it echoes.

Coordinates: ``x`` across (mm), ``y`` away from the probe (mm), the convex probe's centre of curvature at the origin,
so the probe surface is the arc of radius ``probe_radius_mm`` (for a linear probe, the line ``y = probe_radius_mm``).

Structures (../shared/PHANTOMS.md): layered rectal wall (optionally behind a water stand-off), the gland with a
homogeneous peripheral zone (the isoechoic reference, posterior and lateral), a heterogeneous transition zone with
BPH nodules and cysts, the anterior fibromuscular stroma, a bright capsule and periprostatic fat, the urethra (with a
partial shadow), the venous plexus, corpora amylacea calcifications along the surgical capsule (bright, shadowing),
seminal vesicles and the bladder on base slices, and 0-2 cancer lesions (about 70% in the peripheral zone, hypo- to
near-isoechoic, irregular borders) whose masks are clipped to the gland.

Each structure maps points to a mean backscatter amplitude (relative to the peripheral zone), an attenuation
(dB/cm/MHz) and a one-way transmission loss (nepers per mm, for shadows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import FrameSettings, PhantomConfig

__all__ = ["Anatomy", "Blob"]


@dataclass
class Blob:
    """An irregular ellipse-like region: centre, radii (mm), rotation, and Fourier coefficients of its boundary."""

    cx: float
    cy: float
    rx: float
    ry: float
    rot: float = 0.0
    coeffs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.complex64))

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        rot: float,
        harmonics: int,
        roughness: float,
    ) -> Blob:
        amps = rng.normal(0.0, roughness, harmonics) / np.arange(1, harmonics + 1)
        phases = rng.uniform(0.0, 2 * np.pi, harmonics)
        return cls(cx, cy, rx, ry, rot, (amps * np.exp(1j * phases)).astype(np.complex64))

    @property
    def reach(self) -> float:
        """Radius (mm) around the centre outside which every point has rho > 1.5."""
        return 1.6 * max(self.rx, self.ry) * (1.0 + float(np.abs(self.coeffs).sum()))

    def near(self, x: np.ndarray, y: np.ndarray, margin: float = 0.0) -> np.ndarray:
        r = self.reach + margin
        return (np.abs(x - self.cx) < r) & (np.abs(y - self.cy) < r)

    def rho(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised radial coordinate: < 1 inside, 1 on the boundary.

        The boundary 1 + Re(sum_k c_k z^k), z = e^{i phi}, is evaluated by Horner's rule: a few complex
        multiply-adds per point instead of an arctan and K cosines."""
        dx, dy = np.asarray(x, np.float32) - self.cx, np.asarray(y, np.float32) - self.cy
        c, s = np.float32(np.cos(self.rot)), np.float32(np.sin(self.rot))
        u = (dx * c + dy * s) / np.float32(self.rx)
        v = (-dx * s + dy * c) / np.float32(self.ry)
        r = np.sqrt(u * u + v * v)
        if self.coeffs.size == 0:
            return r
        z = (u + 1j * v).astype(np.complex64) / np.maximum(r, 1e-6)
        acc = np.full(z.shape, self.coeffs[-1], np.complex64)
        for ck in self.coeffs[-2::-1]:
            acc = acc * z + ck
        return r / np.maximum(1.0 + (acc * z).real, 0.3)


def _soft_inside(rho: np.ndarray, edge: float) -> np.ndarray:
    """1 inside, 0 outside, a logistic edge of relative width ``edge``."""
    return 1.0 / (1.0 + np.exp(np.clip((rho - 1.0) / max(edge, 1e-3), -30, 30)))


class _Texture:
    """A smooth random field (relative modulation around 1) sampled at any point: a small grid of random values,
    bilinearly interpolated over the scene's bounding box."""

    def __init__(self, rng: np.random.Generator, amplitude: float, cells: int, extent: float):
        self.grid = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
        self.amplitude, self.extent, self.cells = amplitude, extent, cells

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = self.cells - 1
        gx = np.clip((np.asarray(x) + self.extent) / (2 * self.extent) * n, 0, n - 1e-3)
        gy = np.clip(np.asarray(y) / (1.2 * self.extent) * n, 0, n - 1e-3)
        ix, iy = gx.astype(np.int32), gy.astype(np.int32)
        fx, fy = gx - ix, gy - iy
        g = self.grid
        v = (
            g[iy, ix] * (1 - fx) * (1 - fy)
            + g[iy, ix + 1] * fx * (1 - fy)
            + g[iy + 1, ix] * (1 - fx) * fy
            + g[iy + 1, ix + 1] * fx * fy
        )
        return np.exp(self.amplitude * v).astype(np.float32)


class Anatomy:
    """One frame's tissue layout, drawn from the config (deterministic for a given generator state)."""

    def __init__(self, rng: np.random.Generator, cfg: PhantomConfig, s: FrameSettings):
        self.linear = s.linear_probe
        rp = s.probe_radius_mm
        self.rp = rp
        extent = rp + s.depth_mm
        # Rectal wall: optional water stand-off, then mucosa (bright), muscularis (dark), serosa/perirectal (bright).
        standoff = float(rng.uniform(0.0, 3.0)) if rng.random() < 0.4 else 0.0
        layers = [standoff, rng.uniform(0.4, 0.8), rng.uniform(0.8, 1.6), rng.uniform(0.5, 1.0)]
        self.wall_edges = rp + np.cumsum(layers)
        self.wall_amps = [0.02, rng.uniform(1.6, 3.0), rng.uniform(0.15, 0.45), rng.uniform(1.4, 2.5)]
        base = bool(rng.random() < cfg.base_slice_prob)
        self.base_slice = base
        # Gland: wider than deep, its posterior capsule 1-6 mm above the rectal wall.
        width = float(rng.uniform(*cfg.gland_width_mm)) * (rng.uniform(0.55, 0.8) if base else 1.0)
        depth = width * float(rng.uniform(*cfg.gland_depth_ratio))
        a, b = width / 2, depth / 2
        cy = self.wall_edges[-1] + rng.uniform(1.0, 6.0) + b + (rng.uniform(6.0, 12.0) if base else 0.0)
        self.gland = Blob.random(rng, rng.normal(0.0, 2.0), cy, a, b, rng.uniform(-0.12, 0.12), 6, 0.05)
        g = self.gland
        # Transition zone: anterior-central; anterior fibromuscular stroma: the anterior band of the gland.
        self.tz = Blob.random(
            rng,
            g.cx + rng.normal(0, 1.0),
            g.cy + b * rng.uniform(0.05, 0.25),
            a * rng.uniform(0.45, 0.7),
            b * rng.uniform(0.45, 0.65),
            rng.uniform(-0.2, 0.2),
            5,
            0.06,
        )
        self.afms_y = g.cy + b * rng.uniform(0.55, 0.75)
        self.echo_bg = float(rng.uniform(0.9, 1.7))  # periprostatic fat: brighter than the gland
        self.echo_tz = float(rng.uniform(0.6, 1.1))
        self.echo_afms = float(rng.uniform(0.3, 0.6))
        self.capsule = (float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.3, 0.8)))  # extra amplitude, width (mm)
        self.att = float(s.attenuation_db_cm_mhz)
        self.tex_fat = _Texture(rng, float(rng.uniform(0.15, 0.35)), 14, extent)
        self.tex_tz = _Texture(rng, float(rng.uniform(0.1, 0.35)), 22, extent)
        self.tex_pz = _Texture(rng, float(rng.uniform(0.02, 0.1)), 10, extent)
        # BPH nodules and cysts in the transition zone (dark regions that are NOT cancer).
        self.nodules: list[tuple[Blob, float]] = []
        if rng.random() < cfg.bph_prob:
            for _ in range(int(rng.integers(1, 5))):
                ang, rad = rng.uniform(-np.pi, np.pi), rng.uniform(0.0, 0.6)
                r = rng.uniform(2.5, 7.0)
                blob = Blob.random(
                    rng,
                    self.tz.cx + rad * self.tz.rx * np.cos(ang),
                    self.tz.cy + rad * self.tz.ry * np.sin(ang),
                    r,
                    r * rng.uniform(0.7, 1.0),
                    rng.uniform(-np.pi, np.pi),
                    4,
                    0.08,
                )
                self.nodules.append((blob, float(rng.uniform(0.55, 1.4))))
        self.cysts: list[Blob] = []
        if rng.random() < cfg.cyst_prob:
            for _ in range(int(rng.integers(1, 4))):
                ang, rad = rng.uniform(-np.pi, np.pi), rng.uniform(0.0, 0.8)
                r = rng.uniform(0.8, 2.5)  # prostatic cysts are mostly small
                self.cysts.append(
                    Blob(
                        self.tz.cx + rad * self.tz.rx * np.cos(ang),
                        self.tz.cy + rad * self.tz.ry * np.sin(ang),
                        r,
                        r * rng.uniform(0.7, 1.0),
                    )
                )
        # Urethra: anterior-central in the transition zone; a dark lumen with a bright wall, sometimes shadowing.
        ur = rng.uniform(1.0, 2.5)
        self.urethra = Blob(
            self.tz.cx + rng.normal(0, 1.0),
            self.tz.cy + self.tz.ry * rng.uniform(-0.1, 0.4),
            ur,
            ur * rng.uniform(0.6, 1.0),
            rng.uniform(-np.pi, np.pi),
        )
        self.urethra_lumen = float(rng.uniform(0.3, 0.9))  # how dark the lumen is (0: not at all)
        self.urethra_wall = float(rng.uniform(0.0, 1.5))  # how bright its wall is
        self.urethra_loss = float(rng.uniform(0.05, 0.4)) if rng.random() < cfg.urethra_shadow_prob else 0.0
        # Corpora amylacea: calcifications along the surgical capsule (the TZ boundary), bright with a shadow.
        self.calcs: list[tuple[float, float, float, float]] = []  # x, y, radius, loss (nepers over the calc)
        if rng.random() < cfg.calcification_prob:
            start = rng.uniform(-np.pi, np.pi)
            for i in range(int(rng.integers(1, 7))):
                ang = start + i * rng.uniform(0.1, 0.5)
                self.calcs.append(
                    (
                        self.tz.cx + self.tz.rx * np.cos(ang),
                        self.tz.cy + self.tz.ry * np.sin(ang),
                        float(rng.uniform(0.3, 1.2)),
                        float(rng.uniform(0.7, 3.0)),
                    )
                )
        # Venous plexus: dark blobs outside the gland, anterior and lateral.
        self.veins = []
        for _ in range(int(rng.integers(0, 5))):
            ang = rng.uniform(0.1 * np.pi, 0.9 * np.pi)
            r = rng.uniform(1.2, 4.0)
            self.veins.append(
                (
                    Blob.random(
                        rng,
                        g.cx + (a + r * 1.2) * np.cos(ang),
                        g.cy + (b + r * 1.2) * np.sin(ang),
                        r,
                        r * rng.uniform(0.4, 1.0),
                        rng.uniform(-np.pi, np.pi),
                        3,
                        0.1,
                    ),
                    float(rng.uniform(0.4, 0.9)),
                )
            )
        # Base slices: seminal vesicles (dark, bilateral, posterior) and the bladder (anechoic, anterior).
        self.vesicles: list[Blob] = []
        self.bladder: Blob | None = None
        if base:
            for side in (-1, 1):
                self.vesicles.append(
                    Blob.random(
                        rng,
                        side * a * rng.uniform(0.9, 1.4),
                        g.cy - b * rng.uniform(0.6, 1.0),
                        rng.uniform(7.0, 13.0),
                        rng.uniform(2.5, 5.0),
                        side * rng.uniform(0.1, 0.5),
                        4,
                        0.08,
                    )
                )
            br = rng.uniform(15.0, 30.0)
            self.bladder = Blob.random(
                rng,
                rng.normal(0, 4.0),
                g.cy + b + rng.uniform(2.0, 6.0) + br * 0.7,
                br * rng.uniform(1.0, 1.6),
                br,
                rng.uniform(-0.2, 0.2),
                4,
                0.05,
            )
        # Cancer: 0-2 lesions, mostly in the peripheral zone (posterior and lateral), hypo- to near-isoechoic.
        n = int(rng.choice(len(cfg.lesion_counts), p=np.asarray(cfg.lesion_counts) / sum(cfg.lesion_counts)))
        self.lesions: list[tuple[Blob, float, float]] = []  # blob, contrast, soft edge (relative)
        for _ in range(n):
            d = float(rng.uniform(*cfg.lesion_size_mm))
            if rng.random() < cfg.lesion_pz_prob:  # posterior/lateral peripheral zone: between TZ and capsule
                ang = rng.uniform(-0.95 * np.pi, -0.05 * np.pi) if rng.random() < 0.8 else rng.uniform(-np.pi, np.pi)
                rad = rng.uniform(0.55, 0.85)
            else:
                ang, rad = rng.uniform(-np.pi, np.pi), rng.uniform(0.0, 0.5)
            blob = Blob.random(
                rng,
                g.cx + rad * a * np.cos(ang),
                g.cy + rad * b * np.sin(ang),
                d / 2 * rng.uniform(0.8, 1.2),
                d / 2 * rng.uniform(0.6, 1.0),
                rng.uniform(-np.pi, np.pi),
                5,
                float(rng.uniform(0.06, 0.2)),
            )
            self.lesions.append((blob, float(rng.uniform(*cfg.lesion_contrast)), float(rng.uniform(0.03, 0.12))))

    # ------------------------------------------------------------------------------------------ sampling
    def _probe_distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return y if self.linear else np.hypot(x, y)

    def maps(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(amplitude, attenuation in dB/cm/MHz, one-way transmission loss in nepers/mm) at points (mm)."""
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.float32)
        amp = self.echo_bg * self.tex_fat(x, y)
        att = np.full(x.shape, 0.9 * self.att, np.float32)
        loss = np.zeros(x.shape, np.float32)
        # rectal wall layers
        r = self._probe_distance(x, y)
        lo = self.rp
        for edge, a in zip(self.wall_edges, self.wall_amps):
            inside = (r >= lo) & (r < edge)
            amp[inside] = a
            lo = edge
        if self.wall_edges[0] > self.rp:  # water stand-off: no attenuation
            att[(r >= self.rp) & (r < self.wall_edges[0])] = 0.002
        # veins, seminal vesicles (outside the gland)
        for blob, dark in self.veins:
            self._paint(amp, x, y, blob, lambda m, v, d=dark: m * (1 - d * v), edge=0.15)
        for blob in self.vesicles:
            self._paint(amp, x, y, blob, lambda m, v: m * (1 - 0.75 * v), edge=0.12)
        # gland with zones
        g = self.gland
        near = g.near(x, y, margin=2.0)
        if near.any():
            gx, gy = x[near], y[near]
            rho = g.rho(gx, gy)
            inside = _soft_inside(rho, 0.02)
            tz = _soft_inside(self.tz.rho(gx, gy), 0.08)
            zone = (1 - tz) * self.tex_pz(gx, gy) + tz * self.echo_tz * self.tex_tz(gx, gy)
            zone = np.where(gy > self.afms_y, zone * (1 - 0.6 * (1 - self.echo_afms)), zone)
            a_local = amp[near] * (1 - inside) + inside * zone
            a_local += (
                self.capsule[0] * np.exp(-((((rho - 1.0) * g.rx) / self.capsule[1]) ** 2)) * self._specular(gx, gy)
            )
            a_local += 0.4 * tz * (1 - tz) * 4 * 0.3  # faint surgical capsule at the TZ boundary
            amp[near] = a_local
            att[near] = att[near] * (1 - inside) + inside * self.att
        for blob, factor in self.nodules:
            self._paint(amp, x, y, blob, lambda m, v, f=factor: m * (1 - v + v * f), edge=0.1)
        for blob, contrast, edge in self.lesions:
            self._paint(amp, x, y, blob, lambda m, v, c=contrast: m * (1 - v * (1 - c)), edge=edge, clip=g)
            self._paint(att, x, y, blob, lambda m, v: m * (1 + 0.25 * v), edge=edge, clip=g)
        for blob in self.cysts:
            self._paint(amp, x, y, blob, lambda m, v: m * (1 - 0.97 * v), edge=0.05)
            self._paint(att, x, y, blob, lambda m, v: m * (1 - 0.99 * v), edge=0.05)
        if self.bladder is not None:
            b = self.bladder
            self._paint(amp, x, y, b, lambda m, v: m * (1 - 0.98 * v) + 1.5 * v * (1 - v) * 4, edge=0.01)
            self._paint(att, x, y, b, lambda m, v: m * (1 - 0.99 * v), edge=0.01)
        u = self.urethra
        self._paint(
            amp, x, y, u, lambda m, v: m * (1 - self.urethra_lumen * v) + self.urethra_wall * v * (1 - v) * 4, edge=0.2
        )
        if self.urethra_loss:
            self._paint(loss, x, y, u, lambda m, v: m + v * self.urethra_loss / u.rx, edge=0.2)
        for cx, cy, cr, c_loss in self.calcs:
            near = (np.abs(x - cx) < 4 * cr) & (np.abs(y - cy) < 4 * cr)
            if near.any():
                d2 = ((x[near] - cx) ** 2 + (y[near] - cy) ** 2) / cr**2
                spot = np.exp(-d2)
                amp[near] += 12.0 * spot
                loss[near] += spot * c_loss / (np.sqrt(np.pi) * cr)  # integrates to c_loss nepers across the calc
        return amp, att, loss

    def _specular(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Specular reflection of the capsule: brighter where the beam meets the boundary head-on."""
        g = self.gland
        nx, ny = (x - g.cx) / g.rx**2, (y - g.cy) / g.ry**2
        if self.linear:
            bx, by = np.zeros_like(x), np.ones_like(y)
        else:
            rr = np.maximum(np.hypot(x, y), 1e-3)
            bx, by = x / rr, y / rr
        cos = np.abs(nx * bx + ny * by) / np.maximum(np.hypot(nx, ny), 1e-9)
        return 0.35 + 0.65 * cos**2

    @staticmethod
    def _paint(target: np.ndarray, x, y, blob: Blob, fn, edge: float, clip: Blob | None = None) -> None:
        near = blob.near(x, y)
        if not near.any():
            return
        v = _soft_inside(blob.rho(x[near], y[near]), edge)
        if clip is not None:
            v = v * (clip.rho(x[near], y[near]) < 0.98)
        target[near] = fn(target[near], v)

    def masks(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gland, lesion) boolean masks at points (mm); lesions are clipped to the gland."""
        gland = np.zeros(np.shape(x), bool)
        lesion = np.zeros(np.shape(x), bool)
        near = self.gland.near(x, y)
        if near.any():
            gx, gy = x[near], y[near]
            g_in = self.gland.rho(gx, gy) < 1.0
            gland[near] = g_in
            les = np.zeros(gx.shape, bool)
            for blob, _, _ in self.lesions:
                sub = blob.near(gx, gy)
                if sub.any():
                    les[sub] |= blob.rho(gx[sub], gy[sub]) < 1.0
            lesion[near] = les & g_in
        return gland, lesion
