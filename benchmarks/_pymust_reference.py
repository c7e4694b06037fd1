"""Simulate homogeneous-tissue TRUS frames with pymust (MUST's SIMUS: pulse-echo physics, slow) and write the speckle
figures that `speckle_physics.py` compares the phantoms with. Run once; the figures, not the frames, are kept:

    pip install pymust==0.1.9 && python benchmarks/_pymust_reference.py --out benchmarks/speckle_reference.json

A convex array shaped like an end-fire TRUS probe (128 elements on a 10 mm radius over a 130 degree sector) sends a
diverging wave (all elements at once) into fully developed speckle (Gaussian reflection coefficients, >= 10
scatterers per resolution cell); delay-and-sum beamforming of the I/Q signals gives the envelope on Cartesian
patches at two depths (fine grid, mm) and on a whole 512x512 frame (the grain in pixels).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _speckle import speckle_stats

R_MM, SECTOR_DEG, N_ELEMENTS = 10.0, 130.0, 128


def _probe(fc_hz: float, bandwidth_pct: float):
    import pymust

    param = pymust.getparam("C5-2v")
    param.fc, param.bandwidth, param.Nelements = fc_hz, bandwidth_pct, N_ELEMENTS
    param.radius = R_MM * 1e-3
    param.pitch = np.deg2rad(SECTOR_DEG) * param.radius / N_ELEMENTS
    param.kerf = 0.1 * param.pitch
    param.width = param.pitch - param.kerf
    param.fs = 4 * fc_hz
    return param


def _scatterers(rng, r0_mm, r1_mm, half_deg, density_per_mm2):
    half = np.deg2rad(half_deg)
    area = half * (r1_mm**2 - r0_mm**2)  # sector of +-half
    n = int(density_per_mm2 * area)
    r = np.sqrt(rng.uniform(r0_mm**2, r1_mm**2, n))
    th = rng.uniform(-half, half, n)
    return r * np.sin(th), r * np.cos(th), rng.standard_normal(n)


def _beamform(iq, param, x_mm, r_up_mm):
    """Envelope at Cartesian points given as lateral x and height above the centre of curvature (mm)."""
    import pymust

    h = R_MM * np.cos(np.deg2rad(SECTOR_DEG / 2))  # pymust's z = 0 is the chord of the array
    dels = np.zeros((1, param.Nelements))
    x, z = x_mm * 1e-3, (r_up_mm - h) * 1e-3
    m = pymust.dasmtx(1j * np.ones_like(iq), x, z, dels, param)
    return np.abs((m @ iq.flatten(order="F")).reshape(x.shape, order="F"))


def simulate_patches(fc_hz, bandwidth_pct, seed, depths_mm=(15.0, 30.0), patch_mm=6.0, spacing_mm=0.03):
    import pymust

    param = _probe(fc_hz, bandwidth_pct)
    rng = np.random.default_rng(seed)
    x, y, rc = _scatterers(rng, R_MM + min(depths_mm) - patch_mm, R_MM + max(depths_mm) + patch_mm, 14.0, 150.0)
    h = R_MM * np.cos(np.deg2rad(SECTOR_DEG / 2))
    t = time.time()
    rf = pymust.simus(x * 1e-3, (y - h) * 1e-3, rc, np.zeros((1, param.Nelements)), param)[0]
    iq = pymust.rf2iq(rf, param)
    out = []
    for d in depths_mm:
        grid = np.arange(-patch_mm / 2, patch_mm / 2, spacing_mm)
        xx, yy = np.meshgrid(grid, R_MM + d + grid)
        env = _beamform(iq, param, xx, yy)[::-1]  # rows from deep to shallow, as an image with the probe below
        out.append({"depth_mm": d, **speckle_stats(env, spacing_mm)})
    return out, len(rc), time.time() - t


def simulate_frame(fc_hz, bandwidth_pct, seed, depth_mm=50.0, size=512):
    """A whole homogeneous 512x512 frame (fan fitted to the width, probe at the bottom): the grain in pixels."""
    import pymust

    param = _probe(fc_hz, bandwidth_pct)
    rng = np.random.default_rng(seed)
    half = SECTOR_DEG / 2
    density = 120.0 * (fc_hz / 7e6) ** 2  # >= 10 scatterers per resolution cell at every frequency
    x, y, rc = _scatterers(rng, R_MM, R_MM + depth_mm, half, density)
    h = R_MM * np.cos(np.deg2rad(half))
    t = time.time()
    rf = pymust.simus(x * 1e-3, (y - h) * 1e-3, rc, np.zeros((1, param.Nelements)), param)[0]
    iq = pymust.rf2iq(rf, param)
    r_max = R_MM + depth_mm
    width = 2 * r_max * np.sin(np.deg2rad(half))
    px = width / size
    xs = (np.arange(size) + 0.5 - size / 2) * px
    ys = R_MM * np.cos(np.deg2rad(half)) + (size - np.arange(size) - 0.5) * px
    xx, yy = np.meshgrid(xs, ys)
    rr, th = np.hypot(xx, yy), np.degrees(np.arctan2(xx, yy))
    inside = (rr > R_MM + 1) & (rr < r_max - 1) & (np.abs(th) < half - 1)
    env = np.zeros((size, size))
    env[inside] = _beamform(iq, param, xx[inside], yy[inside])
    return env, inside, px, len(rc), time.time() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).with_name("speckle_reference.json")))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--frequencies", type=float, nargs="+", default=[7.0, 5.0], help="MHz")
    p.add_argument("--bandwidth", type=float, default=70.0, help="pulse-echo -6 dB fractional bandwidth, %%")
    p.add_argument(
        "--frame",
        type=float,
        nargs="*",
        default=None,
        metavar="MHZ",
        help="also simulate whole 512x512 frames at these frequencies (about 15 minutes each)",
    )
    p.add_argument("--frames-only", action="store_true", help="keep the patch figures of --out, add frames")
    a = p.parse_args()
    from _speckle import grain_px

    ref = {
        "probe": {
            "radius_mm": R_MM,
            "sector_deg": SECTOR_DEG,
            "elements": N_ELEMENTS,
            "bandwidth_pct": a.bandwidth,
            "transmit": "diverging wave, DAS receive",
        },
        "settings": [],
        "frames_512": [],
    }
    if a.frames_only:
        ref = json.loads(Path(a.out).read_text())
    else:
        for f in a.frequencies:
            runs = []
            for seed in range(a.seeds):
                patches, n, secs = simulate_patches(f * 1e6, a.bandwidth, seed)
                print(f"{f} MHz seed {seed}: {n} scatterers, {secs:.0f} s: {patches}", flush=True)
                runs.append(patches)
            ref["settings"].append({"frequency_mhz": f, "runs": runs})
    for f in a.frame or []:
        env, inside, px, n, secs = simulate_frame(f * 1e6, a.bandwidth, 0)
        g = grain_px(np.where(inside, env, 0), inside)
        print(f"512x512 frame at {f} MHz: {n} scatterers, {secs:.0f} s, {px:.3f} mm/px, grain {g}", flush=True)
        ref.setdefault("frames_512", []).append({"frequency_mhz": f, "mm_per_px": px, "depth_mm": 50.0, **g})
        Path(a.out).write_text(json.dumps(ref, indent=1))
    Path(a.out).write_text(json.dumps(ref, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
