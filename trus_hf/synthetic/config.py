"""`PhantomConfig`: the probe, the tissue and the display of a synthetic TRUS frame, in physical units, as ranges.

Every knob is a ``(low, high)`` range (a single number means a fixed value) or a probability; each frame draws its
own `FrameSettings` from the ranges, so a dataset covers many scanners, settings and patients (domain
randomisation). Named presets (`PRESETS`): ``default`` (the documented ranges below, for training), ``clean`` (one
mid setting, no display artefacts, clearly hypoechoic lesions: tests and demos), ``hard`` (wider ranges,
near-isoechoic lesions, heavy artefacts), ``wide`` (the default anatomy and lesions under the hard preset's probe,
system and display ranges: training data for models meant for other scanners) and ``shifted``
(settings outside the default ranges, for held-out evaluation).

Default ranges (typical transverse TRUS, ../shared/PHANTOMS.md of the project):

========================= ================= =====================================================================
knob                      default           meaning
========================= ================= =====================================================================
frequency_mhz             4 - 9             centre frequency
bandwidth                 0.6 - 0.8         pulse-echo -6 dB fractional bandwidth
probe_radius_mm           8 - 12            radius of the convex probe surface
sector_deg                110 - 150         opening angle of the sector
depth_mm                  40 - 70           imaging depth below the probe surface
focus_mm                  15 - 40           transmit focus depth (focused transmit)
f_number                  1.8 - 3.2         smallest F-number of the receive aperture
aperture_mm               15 - 30           array length: deeper than aperture x F-number the F-number grows
focused_transmit_prob     0.5               line-by-line focused transmit (a focal zone) or diverging waves
dynamic_range_db          40 - 60           log compression
attenuation_db_cm_mhz     0.5 - 0.8         prostate attenuation (other tissues relative to it)
tgc_compensation          0.7 - 0.9         share of the nominal attenuation the TGC undoes
tgc_ripple_db             0 - 3             random TGC slider positions
gain_db                   -6 - 6            overall gain
scatterers_per_cell       4 - 40            below ~10 the speckle is partially developed (darker, spikier)
clutter_prob              0                 acoustic clutter (side lobes, reverberation) filling dark regions
clutter_db                -30 - -6          its level against the local echo (where drawn)
clutter_mm                2 - 8             how far it spreads (Gaussian sigma, mm)
scan_lines                48 - 480          acquired lines over the sector (log-uniform), interpolated on display
line_samples              128 - 900         stored samples along each line (log-uniform), interpolated on display
smoothing_prob            0.5               the scanner's speckle reduction (an anisotropic blur of the display)
gland_width_mm            30 - 50           transverse width of the prostate
gland_depth_ratio         0.6 - 0.85        antero-posterior depth / width
lesion_counts             0.35, 0.45, 0.2   probabilities of 0, 1 and 2 cancer lesions
lesion_contrast           0.25 - 0.95       lesion / surrounding echo amplitude (1 = isoechoic)
lesion_size_mm            4 - 14            lesion diameter
zoom                      0.9 - 1.2         display zoom (above 1 the fan is cropped)
========================= ================= =====================================================================

Example:
    >>> from trus_hf.synthetic import PhantomConfig, PRESETS
    >>> PRESETS["clean"].frequency_mhz
    (7.0, 7.0)
    >>> PhantomConfig(lesion_contrast=0.5).lesion_contrast
    (0.5, 0.5)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["PRESETS", "FrameSettings", "PhantomConfig", "draw_settings", "resolve_config"]

Range = tuple[float, float]


@dataclass(frozen=True)
class PhantomConfig:
    """Ranges of every knob of the phantom generator (see the module docstring for units and defaults)."""

    # probe and system
    frequency_mhz: Range = (4.0, 9.0)
    bandwidth: Range = (0.6, 0.8)
    probe_radius_mm: Range = (8.0, 12.0)
    sector_deg: Range = (110.0, 150.0)
    depth_mm: Range = (40.0, 70.0)
    focus_mm: Range = (15.0, 40.0)
    f_number: Range = (1.8, 3.2)
    aperture_mm: Range = (15.0, 30.0)
    focused_transmit_prob: float = 0.5
    dynamic_range_db: Range = (40.0, 60.0)
    attenuation_db_cm_mhz: Range = (0.5, 0.8)
    tgc_compensation: Range = (0.7, 0.9)
    tgc_ripple_db: Range = (0.0, 3.0)
    gain_db: Range = (-6.0, 6.0)
    scatterers_per_cell: Range = (4.0, 40.0)
    noise_db: Range = (-75.0, -55.0)
    clutter_prob: float = 0.0
    clutter_db: Range = (-30.0, -6.0)
    clutter_mm: Range = (2.0, 8.0)
    scan_lines: Range = (48.0, 480.0)
    line_samples: Range = (128.0, 900.0)
    linear_probe_prob: float = 0.05
    # anatomy
    gland_width_mm: Range = (30.0, 50.0)
    gland_depth_ratio: Range = (0.6, 0.85)
    lesion_counts: tuple[float, ...] = (0.35, 0.45, 0.20)
    lesion_contrast: Range = (0.25, 0.95)
    lesion_size_mm: Range = (4.0, 14.0)
    lesion_pz_prob: float = 0.7
    calcification_prob: float = 0.4
    bph_prob: float = 0.6
    cyst_prob: float = 0.15
    base_slice_prob: float = 0.15
    urethra_shadow_prob: float = 0.3
    # display and export
    zoom: Range = (0.9, 1.2)
    probe_at_top_prob: float = 0.1
    overlay_prob: float = 0.8
    caliper_prob: float = 0.2
    letterbox_prob: float = 0.3
    smoothing_prob: float = 0.5
    jpeg_prob: float = 0.5
    jpeg_quality: Range = (35.0, 95.0)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "lesion_counts":
                probs = tuple(float(p) for p in value)
                if not probs or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
                    raise ValueError(
                        f"lesion_counts must be probabilities of 0, 1, ... lesions summing to 1, got {value}"
                    )
                object.__setattr__(self, f.name, probs)
            elif f.name.endswith("_prob"):
                if not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"{f.name} must be a probability in [0, 1], got {value}")
            else:
                lo, hi = (value, value) if np.isscalar(value) else tuple(value)
                if not lo <= hi:
                    raise ValueError(f"{f.name} must be a number or a (low, high) range with low <= high, got {value}")
                object.__setattr__(self, f.name, (float(lo), float(hi)))
        positive = (
            "frequency_mhz",
            "bandwidth",
            "probe_radius_mm",
            "sector_deg",
            "depth_mm",
            "focus_mm",
            "f_number",
            "aperture_mm",
            "dynamic_range_db",
            "scatterers_per_cell",
            "clutter_mm",
            "scan_lines",
            "line_samples",
            "gland_width_mm",
            "gland_depth_ratio",
            "lesion_size_mm",
            "zoom",
        )
        for name in positive:
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.sector_deg[1] >= 180:
            raise ValueError(f"sector_deg must be below 180, got {self.sector_deg}")
        if not (0 <= self.lesion_contrast[0] and self.lesion_contrast[1] <= 1.5):
            raise ValueError(f"lesion_contrast must lie in [0, 1.5], got {self.lesion_contrast}")

    @property
    def max_lesions(self) -> int:
        return len(self.lesion_counts) - 1

    def replace(self, **changes: Any) -> PhantomConfig:
        """A copy with some knobs changed (same validation)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_NO_DISPLAY_ARTEFACTS = dict(
    overlay_prob=0.0,
    caliper_prob=0.0,
    letterbox_prob=0.0,
    smoothing_prob=0.0,
    jpeg_prob=0.0,
    probe_at_top_prob=0.0,
    linear_probe_prob=0.0,
    zoom=1.0,
)

#: The hard preset's probe, system and display ranges (shared by ``hard`` and ``wide``).
_HARD_ACQUISITION = dict(
    scan_lines=(48.0, 900.0),
    line_samples=(128.0, 1200.0),
    frequency_mhz=(4.5, 10.0),
    bandwidth=(0.5, 0.85),
    probe_radius_mm=(6.0, 14.0),
    sector_deg=(90.0, 160.0),
    depth_mm=(35.0, 80.0),
    f_number=(1.5, 4.0),
    dynamic_range_db=(35.0, 70.0),
    attenuation_db_cm_mhz=(0.4, 1.0),
    tgc_compensation=(0.5, 1.0),
    tgc_ripple_db=(0.0, 6.0),
    gain_db=(-10.0, 10.0),
    scatterers_per_cell=(2.0, 40.0),
    linear_probe_prob=0.2,
    probe_at_top_prob=0.3,
    overlay_prob=1.0,
    caliper_prob=0.5,
    letterbox_prob=0.6,
    smoothing_prob=0.5,
    jpeg_prob=0.8,
    jpeg_quality=(20.0, 80.0),
    zoom=(0.8, 1.4),
)

PRESETS: dict[str, PhantomConfig] = {
    "default": PhantomConfig(),
    "clean": PhantomConfig(
        scan_lines=256.0,
        line_samples=512.0,
        frequency_mhz=7.0,
        bandwidth=0.7,
        probe_radius_mm=10.0,
        sector_deg=130.0,
        depth_mm=55.0,
        focus_mm=25.0,
        f_number=2.5,
        dynamic_range_db=50.0,
        attenuation_db_cm_mhz=0.6,
        tgc_compensation=0.85,
        tgc_ripple_db=0.0,
        gain_db=0.0,
        scatterers_per_cell=30.0,
        lesion_contrast=(0.3, 0.55),
        lesion_size_mm=(10.0, 16.0),
        lesion_pz_prob=0.8,
        calcification_prob=0.2,
        base_slice_prob=0.0,
        **_NO_DISPLAY_ARTEFACTS,
    ),
    "hard": PhantomConfig(
        **_HARD_ACQUISITION,
        lesion_contrast=(0.5, 1.0),
        lesion_size_mm=(3.0, 12.0),
        calcification_prob=0.6,
        bph_prob=0.8,
        cyst_prob=0.5,
        base_slice_prob=0.3,
    ),
    # Domain randomisation for models meant for other scanners: the default anatomy and lesions under the hard
    # preset's probe, system and display ranges.
    "wide": PhantomConfig(**_HARD_ACQUISITION),
    # Outside the default ranges on purpose: held-out evaluation of models trained on "default" (the "wide" preset
    # covers part of it: frequency, focus, gland size and line sampling stay outside).
    "shifted": PhantomConfig(
        scan_lines=(520.0, 800.0),
        line_samples=(950.0, 1400.0),
        frequency_mhz=(3.0, 3.8),
        bandwidth=(0.45, 0.55),
        probe_radius_mm=(13.0, 16.0),
        sector_deg=(90.0, 105.0),
        depth_mm=(72.0, 90.0),
        focus_mm=(45.0, 60.0),
        f_number=(3.3, 4.0),
        dynamic_range_db=(62.0, 72.0),
        attenuation_db_cm_mhz=(0.85, 1.0),
        gain_db=(6.0, 10.0),
        gland_width_mm=(26.0, 30.0),
        lesion_contrast=(0.3, 0.8),
        jpeg_prob=1.0,
        jpeg_quality=(20.0, 35.0),
    ),
}


def resolve_config(config: PhantomConfig | str | None) -> PhantomConfig:
    """A `PhantomConfig` from a config, a preset name or None (the ``default`` preset)."""
    if config is None:
        return PRESETS["default"]
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown phantom preset {config!r}; valid: {', '.join(PRESETS)}")
        return PRESETS[config]
    if not isinstance(config, PhantomConfig):
        raise TypeError(f"expected a PhantomConfig or a preset name, got {type(config).__name__}")
    return config


@dataclass
class FrameSettings:
    """The concrete values one frame was made with (drawn from a `PhantomConfig`)."""

    frequency_mhz: float
    bandwidth: float
    probe_radius_mm: float
    sector_deg: float
    depth_mm: float
    focus_mm: float
    f_number: float
    aperture_mm: float
    focused_transmit: bool
    dynamic_range_db: float
    attenuation_db_cm_mhz: float
    tgc_compensation: float
    tgc_ripple_db: float
    gain_db: float
    scatterers_per_cell: float
    noise_db: float
    scan_lines: int
    line_samples: int
    linear_probe: bool
    zoom: float
    probe_at_top: bool
    overlays: bool
    calipers: bool
    letterbox: bool
    smoothing: bool
    jpeg_quality: int | None
    clutter_db: float | None = None
    clutter_mm: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wavelength_mm(self) -> float:
        return 1.54 / self.frequency_mhz  # c = 1540 m/s

    @property
    def axial_sigma_mm(self) -> float:
        """Gaussian sigma of the pulse-echo envelope along the beam: sqrt(2 ln 2) / (pi B f0) in time, c/2 times it,
        times 1.33: calibrated so that the speckle's axial size matches MUST/SIMUS (pymust) at the same centre
        frequency and pulse-echo bandwidth (benchmarks/speckle_physics.py)."""
        return 1.33 * 1.54 / 2 * np.sqrt(2 * np.log(2)) / (np.pi * self.bandwidth * self.frequency_mhz)

    def lateral_sigma_mm(self, depth_mm: np.ndarray) -> np.ndarray:
        """Gaussian sigma of the two-way beam profile across the beam at each depth.

        Dynamic receive focusing with the F-number kept at ``f_number`` until the aperture is used up, then growing
        with depth (``radius / aperture``); the width is wavelength x F-number (a full width at half maximum, times
        1.3, calibrated against SIMUS like the axial size). With focused transmit the beam also narrows at the focus
        and widens away from it (depth of field 7 lambda F^2)."""
        depth = np.asarray(depth_mm, np.float64)
        radius = depth + (self.probe_radius_mm if not self.linear_probe else 0.0)
        f_eff = np.maximum(self.f_number, radius / self.aperture_mm)
        sigma = 1.3 * self.wavelength_mm * f_eff / 2.355
        if self.focused_transmit:
            dof = 7.0 * self.wavelength_mm * self.f_number**2
            sigma = sigma * 0.8 * np.sqrt(1.0 + ((depth - self.focus_mm) / dof) ** 2)
        return sigma

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(d.pop("extra"))
        if self.clutter_db is None:  # frames without clutter keep the metadata they had before the knob existed
            del d["clutter_db"], d["clutter_mm"]
        return d


def _draw(rng: np.random.Generator, r: Range) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def _draw_log_int(rng: np.random.Generator, r: Range) -> int:
    return int(round(np.exp(_draw(rng, (np.log(r[0]), np.log(r[1]))))))


def draw_settings(rng: np.random.Generator, cfg: PhantomConfig) -> FrameSettings:
    """One frame's settings, drawn in a fixed order (deterministic per seed)."""
    s = FrameSettings(
        frequency_mhz=_draw(rng, cfg.frequency_mhz),
        bandwidth=_draw(rng, cfg.bandwidth),
        probe_radius_mm=_draw(rng, cfg.probe_radius_mm),
        sector_deg=_draw(rng, cfg.sector_deg),
        depth_mm=_draw(rng, cfg.depth_mm),
        focus_mm=_draw(rng, cfg.focus_mm),
        f_number=_draw(rng, cfg.f_number),
        aperture_mm=_draw(rng, cfg.aperture_mm),
        focused_transmit=bool(rng.random() < cfg.focused_transmit_prob),
        dynamic_range_db=_draw(rng, cfg.dynamic_range_db),
        attenuation_db_cm_mhz=_draw(rng, cfg.attenuation_db_cm_mhz),
        tgc_compensation=_draw(rng, cfg.tgc_compensation),
        tgc_ripple_db=_draw(rng, cfg.tgc_ripple_db),
        gain_db=_draw(rng, cfg.gain_db),
        scatterers_per_cell=_draw(rng, cfg.scatterers_per_cell),
        noise_db=_draw(rng, cfg.noise_db),
        scan_lines=_draw_log_int(rng, cfg.scan_lines),
        line_samples=_draw_log_int(rng, cfg.line_samples),
        linear_probe=bool(rng.random() < cfg.linear_probe_prob),
        zoom=_draw(rng, cfg.zoom),
        probe_at_top=bool(rng.random() < cfg.probe_at_top_prob),
        overlays=bool(rng.random() < cfg.overlay_prob),
        calipers=bool(rng.random() < cfg.caliper_prob),
        letterbox=bool(rng.random() < cfg.letterbox_prob),
        smoothing=bool(rng.random() < cfg.smoothing_prob),
        jpeg_quality=None,
    )
    if rng.random() < cfg.jpeg_prob:
        s.jpeg_quality = int(round(_draw(rng, cfg.jpeg_quality)))
    # Knobs added after the first release draw from a child stream (spawning does not advance ``rng``): every earlier
    # knob, the anatomy and the speckle of a seed stay what they were.
    late = rng.spawn(1)[0]
    if late.random() < cfg.clutter_prob:
        s.clutter_db = _draw(late, cfg.clutter_db)
        s.clutter_mm = _draw(late, cfg.clutter_mm)
    return s
