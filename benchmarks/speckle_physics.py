"""The phantoms' speckle against a physics simulator (MUST/SIMUS via pymust) at matched settings, side by side.

    python benchmarks/speckle_physics.py [--seeds 4] [--frames 20] [--sheet docs/phantoms_vs_real.png]

The simulator's figures come from ``speckle_reference.json`` (written once by ``_pymust_reference.py``: a TRUS-like
convex array, 7 and 5 MHz, 70% bandwidth, diverging-wave transmit, delay-and-sum receive, fully developed speckle).
The phantoms are made at the same frequency, bandwidth and probe geometry with the same kind of focusing (receive
aperture 22.7 mm = the simulated array, no transmit focus), homogeneous tissue, and measured the same way
(`_speckle.py`) on their beam grid at the same two depths: envelope mean/std, std of the log envelope, and the
speckle's axial and lateral size (FWHM of the envelope autocovariance). Target: each within 25% of the simulator.

Then the grain of whole displayed frames: the median speckle size in pixels of ``trus-hf synth --size 512`` frames
(the default and wide presets) against the simulator's homogeneous 512x512 frame. And, with ``--sheet``, a contact
sheet of phantoms beside real ultrasound (BUS-BRA frames, when ../shared/data/busbra exists) at the same size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _speckle import autocov_fwhm, grain_px

from trus_hf.synthetic import PhantomConfig, generate_phantom
from trus_hf.synthetic.config import draw_settings
from trus_hf.synthetic.formation import beam_grid, envelope

HERE = Path(__file__).parent
BUSBRA = HERE.parent.parent / "shared" / "data" / "busbra"
KEYS = ("envelope_mean_over_std", "log_std_db", "axial_fwhm_mm", "lateral_fwhm_mm")


def phantom_patch_stats(
    frequency_mhz: float, bandwidth: float, probe: dict, seed: int, depths=(15.0, 30.0), patch_mm: float = 6.0
) -> list[dict[str, float]]:
    """Speckle figures of a homogeneous phantom envelope at matched settings, on its beam grid (no display
    interpolation), in patches of ``patch_mm`` around the centre beam at each depth."""
    cfg = PhantomConfig(
        frequency_mhz=frequency_mhz,
        bandwidth=bandwidth,
        probe_radius_mm=probe["radius_mm"],
        sector_deg=probe["sector_deg"],
        depth_mm=max(depths) + patch_mm + 4,
        f_number=1.0,
        aperture_mm=np.deg2rad(probe["sector_deg"]) * probe["radius_mm"],
        focused_transmit_prob=0.0,
        tgc_compensation=1.0,
        tgc_ripple_db=0.0,
        gain_db=0.0,
        noise_db=-200.0,
        scatterers_per_cell=40.0,
        linear_probe_prob=0.0,
    )
    rng = np.random.default_rng(seed)
    s = draw_settings(rng, cfg)
    grid = beam_grid(s, mm_per_px=0.005)  # finest grid: three samples per PSF width
    env = envelope(None, s, grid, rng).astype(np.float64)
    out = []
    for d in depths:
        lateral = (probe["radius_mm"] + d) * grid.dt
        r0, r1 = int((d - patch_mm / 2) / grid.dr), int((d + patch_mm / 2) / grid.dr)
        c0, c1 = int(grid.nt / 2 - patch_mm / 2 / lateral), int(grid.nt / 2 + patch_mm / 2 / lateral)
        e = env[r0:r1, c0:c1]
        ax, lat = autocov_fwhm(e)
        out.append(
            {
                "depth_mm": d,
                "envelope_mean_over_std": float(e.mean() / e.std()),
                "log_std_db": float((20 * np.log10(np.maximum(e, 1e-12))).std()),
                "axial_fwhm_mm": ax * grid.dr,
                "lateral_fwhm_mm": lat * lateral,
            }
        )
    return out


def _mean_over_runs(runs: list[list[dict]]) -> list[dict[str, float]]:
    return [
        {"depth_mm": runs[0][i]["depth_mm"], **{k: float(np.mean([r[i][k] for r in runs])) for k in KEYS}}
        for i in range(len(runs[0]))
    ]


def compare_speckle(ref: dict, seeds: int) -> bool:
    ok = True
    print("speckle at matched settings (phantom / simulator, ratio; target within 25%):")
    for setting in ref["settings"]:
        f = setting["frequency_mhz"]
        sim = _mean_over_runs(setting["runs"])
        ours = _mean_over_runs(
            [phantom_patch_stats(f, ref["probe"]["bandwidth_pct"] / 100, ref["probe"], seed) for seed in range(seeds)]
        )
        for a, b in zip(ours, sim):
            cells = []
            for k in KEYS:
                ratio = a[k] / b[k]
                ok &= abs(ratio - 1) <= 0.25
                cells.append(f"{k} {a[k]:.3f} / {b[k]:.3f} ({ratio:.2f}x)")
            print(f"  {f:.0f} MHz, depth {a['depth_mm']:.0f} mm: " + "; ".join(cells))
    return ok


def compare_grain(ref: dict, frames: int, presets: list[str]) -> bool:
    """Median grain of ``frames`` 512x512 frames of each preset against the simulator's 512x512 frames (their range);
    the verdict is the first preset's."""
    sims = ref.get("frames_512", [])
    medians = []
    for preset in presets:
        phantoms = (generate_phantom(s, 512, preset) for s in range(frames))
        grains = [grain_px(ph.image, ph.fan_mask.astype(bool)) for ph in phantoms]
        g = np.array([[x["axial_px"], x["lateral_px"]] for x in grains if x["windows"]])
        p10, med, p90 = np.percentile(g, [10, 50, 90], axis=0)
        medians.append(med)
        print(
            f"grain of 512x512 frames (px, axial / lateral), {frames} `trus-hf synth --size 512 --preset {preset}` "
            f"frames: median {med[0]:.2f} / {med[1]:.2f}, 10-90% {p10[0]:.2f}-{p90[0]:.2f} / "
            f"{p10[1]:.2f}-{p90[1]:.2f}"
        )
    med = medians[0]
    if not sims:
        print("no simulated 512x512 frame in the reference (run _pymust_reference.py --frame 7 4)")
        return True
    for sim in sims:
        print(
            f"  simulator, {sim['frequency_mhz']:.0f} MHz, {sim['mm_per_px']:.3f} mm/px: {sim['axial_px']:.2f} / "
            f"{sim['lateral_px']:.2f} (phantom median {med[0] / sim['axial_px']:.2f}x / "
            f"{med[1] / sim['lateral_px']:.2f}x)"
        )
    lo = np.min([[s["axial_px"], s["lateral_px"]] for s in sims], axis=0) * 0.75
    hi = np.max([[s["axial_px"], s["lateral_px"]] for s in sims], axis=0) * 1.25
    return bool(np.all(med >= lo) and np.all(med <= hi))


def contact_sheet(out: Path, n: int = 4, size: tuple[int, int] = (300, 380)) -> None:
    """Phantoms (top rows: default and hard presets) beside real breast ultrasound (bottom row), same size."""
    import cv2

    rows = [[generate_phantom(100 + i, size, preset).image for i in range(n)] for preset in ("default", "hard")]
    if BUSBRA.is_dir():
        files = sorted((BUSBRA / "images").glob("*.png"))[:: max(1, 1875 // n)][:n]
        rows.append([cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), size[::-1]) for f in files])
    pad = 6
    sheet = np.full((len(rows) * (size[0] + pad), n * (size[1] + pad)), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = r * (size[0] + pad), c * (size[1] + pad)
            sheet[y : y + size[0], x : x + size[1]] = img
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    print(f"contact sheet: {out} (rows: default phantoms, hard phantoms{', BUS-BRA' if BUSBRA.is_dir() else ''})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", default=str(HERE / "speckle_reference.json"))
    p.add_argument("--seeds", type=int, default=4, help="phantom realisations per setting")
    p.add_argument("--frames", type=int, default=20, help="512x512 frames for the grain")
    p.add_argument("--presets", nargs="+", default=["default", "wide"], help="phantom presets for the grain")
    p.add_argument("--sheet", default=None, help="write a contact sheet PNG here")
    a = p.parse_args()
    ref = json.loads(Path(a.reference).read_text())
    speckle_ok = compare_speckle(ref, a.seeds)
    grain_ok = compare_grain(ref, a.frames, a.presets)
    print(f"speckle within 25%: {'yes' if speckle_ok else 'NO'}; grain within 25%: {'yes' if grain_ok else 'NO'}")
    if a.sheet:
        contact_sheet(Path(a.sheet))


if __name__ == "__main__":
    main()
