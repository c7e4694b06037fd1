"""Physics-simulated TRUS frames, and the bundled models on them: the held-out check nearest to the issue's
physics-simulated test frames that this machine can make.

    pip install pymust==0.1.9
    python benchmarks/pymust_trus.py simulate --n 24 [--out runs/pymust_trus] [--workers 1]   # slow, resumable
    python benchmarks/pymust_trus.py evaluate [--data runs/pymust_trus] [--models trus_hf/demo_models] [--figure F.jpg]

What is shared with the phantoms the bundled models were trained on, and what is not:
- shared: the tissue layout of a transverse frame (`trus_hf.synthetic.anatomy.Anatomy`: echogenicity, zones,
  capsule, urethra, nodules, cysts, calcifications, 0-2 lesions) drawn from the `default` ranges;
- not shared, which is the point: the image formation. Each frame is made by MUST's SIMUS (pymust, pulse-echo physics
  of a convex array: discrete Gaussian scatterers, element directivity, frequency-dependent attenuation), one
  diverging-wave transmit, delay-and-sum receive beamforming at every pixel (pymust ``dasmtx``), envelope, depth gain,
  log compression without a gray map; no scan-line interpolation, smoothing, on-screen text or JPEG. Probe radius,
  sector, frequency (5-7.5 MHz), depth, dynamic range (50-70 dB) and gain are drawn per frame; the dynamic range
  reaches past the training range (40-60 dB).

The frames, their masks and ``metadata.jsonl`` are written as an imagefolder of two labels (``trus-hf evaluate
--data runs/pymust_trus --labels gland lesion`` reads it too); nothing of it is committed. A 256x256 frame takes
1-4 minutes on one core (hence ``--workers``, best with ``OMP_NUM_THREADS=1``); a frame already written is kept, so
a stopped run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from trus_hf.fileio import write_json, write_jsonl
from trus_hf.synthetic.anatomy import Anatomy
from trus_hf.synthetic.config import draw_settings, resolve_config

ROOT = Path(__file__).resolve().parent.parent
N_ELEMENTS = 128
SEED0 = 700_000  # far from the seeds the bundled models were trained, validated and tested on


def _settings(seed: int):
    """The anatomy and the acquisition of one frame: the generator's draw, then the simulator's own knobs."""
    rng = np.random.default_rng(seed)
    cfg = resolve_config("default")
    s = draw_settings(rng, cfg)
    s.linear_probe = False
    anatomy = Anatomy(rng, cfg, s)
    acq = {
        "frequency_mhz": float(rng.uniform(5.0, 7.5)),
        "bandwidth_pct": float(rng.uniform(55.0, 85.0)),
        "probe_radius_mm": float(s.probe_radius_mm),
        "sector_deg": float(min(s.sector_deg, 140.0)),
        "depth_mm": float(rng.uniform(38.0, 50.0)),
        "dynamic_range_db": float(rng.uniform(50.0, 70.0)),
        "gain_db": float(rng.uniform(-6.0, 6.0)),
        "attenuation_db_cm_mhz": float(s.attenuation_db_cm_mhz),
        "tgc_compensation": float(rng.uniform(0.8, 1.0)),
    }
    return anatomy, acq, rng


def _probe(acq: dict):
    import pymust

    param = pymust.getparam("C5-2v")
    param.fc = acq["frequency_mhz"] * 1e6
    param.bandwidth = acq["bandwidth_pct"]
    param.Nelements = N_ELEMENTS
    param.radius = acq["probe_radius_mm"] * 1e-3
    param.pitch = np.deg2rad(acq["sector_deg"]) * param.radius / N_ELEMENTS
    param.kerf = 0.1 * param.pitch
    param.width = param.pitch - param.kerf
    param.fs = 4 * param.fc
    param.attenuation = acq["attenuation_db_cm_mhz"]
    return param


def _excess_loss(anatomy: Anatomy, acq: dict, r: np.ndarray, th: np.ndarray) -> np.ndarray:
    """Two-way amplitude factor at scatterers (polar r in mm, th in radians) for what pymust's uniform attenuation
    leaves out: tissue attenuating more or less than the prostate, and calcifications' shadows (`Anatomy.maps`),
    integrated along each ray on a polar grid."""
    rp, r1 = acq["probe_radius_mm"], acq["probe_radius_mm"] + acq["depth_mm"]
    half = np.deg2rad(acq["sector_deg"] / 2)
    rr = np.arange(rp, r1 + 0.1, 0.1, dtype=np.float32)
    tt = np.linspace(-half, half, 721, dtype=np.float32)
    R, T = np.meshgrid(rr, tt, indexing="ij")
    _, att, loss = anatomy.maps(R * np.sin(T), R * np.cos(T))
    f = acq["frequency_mhz"]
    nepers_per_mm = (att - acq["attenuation_db_cm_mhz"]) * f / 10.0 / 8.686 + loss
    path = np.cumsum(nepers_per_mm, axis=0) * 0.1
    i = np.clip(np.round((r - rp) / 0.1).astype(int), 0, len(rr) - 1)
    j = np.clip(np.round((th + half) / (2 * half) * (len(tt) - 1)).astype(int), 0, len(tt) - 1)
    return np.exp(-2.0 * path[i, j])


def simulate(seed: int, size: int = 256) -> dict:
    """One frame: ``image`` (uint8, the probe at the bottom), ``gland`` and ``lesion`` masks (0/1) and ``meta``."""
    import pymust

    t0 = time.time()
    anatomy, acq, rng = _settings(seed)
    param = _probe(acq)
    rp, depth, f = acq["probe_radius_mm"], acq["depth_mm"], acq["frequency_mhz"]
    half = np.deg2rad(acq["sector_deg"] / 2)
    r1 = rp + depth
    # ~10 scatterers per resolution cell of a diverging-wave image at this frequency
    density = 55.0 * (f / 7.0) ** 2
    n = int(density * half * (r1**2 - rp**2))
    acq["scatterers_per_mm2"] = round(density, 1)
    r = np.sqrt(rng.uniform(rp**2, r1**2, n))
    th = rng.uniform(-half, half, n)
    x, y = r * np.sin(th), r * np.cos(th)
    amp, _, _ = anatomy.maps(x.astype(np.float32), y.astype(np.float32))
    rc = rng.standard_normal(n) * amp * _excess_loss(anatomy, acq, r, th)
    h = rp * np.cos(half)  # pymust's z = 0 is the chord of the array
    opt = pymust.utils.Options()
    opt.dBThresh = -60.0
    rf = pymust.simus(x * 1e-3, (y - h) * 1e-3, rc, np.zeros((1, N_ELEMENTS)), param, opt)[0]
    iq = pymust.rf2iq(rf, param)
    # pixel grid: the fan fitted into size x size, the probe at the bottom
    width = 2 * r1 * np.sin(half)
    height = r1 - h
    px = max(width, height) / size * 1.02
    xs = (np.arange(size) + 0.5 - size / 2) * px
    ys = (h + r1) / 2 + (size / 2 - np.arange(size) - 0.5) * px  # row 0 deepest
    xx, yy = np.meshgrid(xs, ys)
    rr, tt = np.hypot(xx, yy), np.arctan2(xx, yy)
    fan = (rr > rp + 0.5) & (rr < r1) & (np.abs(tt) < half)
    m = pymust.dasmtx(1j * np.ones_like(iq), xx[fan] * 1e-3, (yy[fan] - h) * 1e-3, np.zeros((1, N_ELEMENTS)), param)
    env = np.zeros((size, size))
    env[fan] = np.abs(m @ iq.flatten(order="F"))
    # depth gain: compensate most of the mean two-way attenuation, as a scanner's TGC does
    two_way_db = 2 * acq["attenuation_db_cm_mhz"] * f * (rr - rp) / 10.0
    env *= 10 ** (acq["tgc_compensation"] * two_way_db / 20.0)
    db = 20 * np.log10(np.maximum(env, 1e-12))
    ref = np.percentile(db[fan], 99.0) + 3.0 - acq["gain_db"]
    img = np.clip((db - ref) / acq["dynamic_range_db"] + 1.0, 0.0, 1.0) * fan
    gland, lesion = anatomy.masks(xx.astype(np.float32), yy.astype(np.float32))
    meta = {
        "seed": seed,
        **{k: round(v, 3) for k, v in acq.items()},
        "mm_per_px": round(px, 4),
        "scatterers": n,
        "n_lesions": len(anatomy.lesions),
        "lesion_contrasts": [round(c, 3) for _, c, _ in anatomy.lesions],
        "seconds": round(time.time() - t0, 1),
    }
    return {
        "image": (img * 255 + 0.5).astype(np.uint8),
        "gland": (gland & fan).astype(np.uint8),
        "lesion": (lesion & fan).astype(np.uint8),
        "meta": meta,
    }


def _write(seed: int, out: Path, size: int) -> dict:
    name = f"pymust_{seed:06d}.png"
    meta_file = out / "meta" / f"{seed}.json"
    if meta_file.exists():
        return json.loads(meta_file.read_text())
    fr = simulate(seed, size)
    cv2.imwrite(str(out / "images" / name), fr["image"])
    cv2.imwrite(str(out / "masks_lesion" / name), fr["lesion"] * 255)
    cv2.imwrite(str(out / "masks_gland" / name), fr["gland"] * 255)
    row = {  # the imagefolder layout of several labels (trus_hf.data.imagefolder)
        "file_name": f"images/{name}",
        "mask_gland_file_name": f"masks_gland/{name}",
        "mask_lesion_file_name": f"masks_lesion/{name}",
        "group": f"pymust_{seed}",
        "source": "pymust",
        **fr["meta"],
    }
    write_json(meta_file, row, indent=None)  # last, atomically: a frame counts as done once its files are written
    return row


def cmd_simulate(a) -> None:
    out = Path(a.out)
    for sub in ("images", "masks_gland", "masks_lesion", "meta"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    seeds = [SEED0 + i for i in range(a.n)]
    rows = []
    with ProcessPoolExecutor(a.workers) as pool:
        for row in pool.map(_write, seeds, [out] * len(seeds), [a.size] * len(seeds)):
            rows.append(row)
            print(
                f"seed {row['seed']}: {row['n_lesions']} lesion(s), {row['frequency_mhz']} MHz, "
                f"{row['scatterers']} scatterers, {row['seconds']} s",
                flush=True,
            )
    write_jsonl(out / "metadata.jsonl", rows)
    print(f"wrote {len(rows)} frames to {out}")


def load_frames(data: Path):
    """The frames simulated so far, loaded as the imagefolder of two labels they are (`trus_hf.data.load_dataset`:
    columns ``mask_gland``, ``mask_lesion``), and their metadata rows."""
    from trus_hf.data import load_dataset

    rows = [json.loads(f.read_text()) for f in sorted((data / "meta").glob("*.json"))]
    if not rows:
        raise SystemExit(f"no simulated frames in {data}: run `simulate` first")
    write_jsonl(data / "metadata.jsonl", rows)
    return load_dataset(data, labels=["gland", "lesion"])["train"], rows


def summary(rows: list[dict]) -> dict:
    """Gland IoU; lesion IoU over all frames, on lesion-bearing frames, the share of those where a pixel of the
    lesion is marked, and the share of lesion-free frames where anything is marked."""
    from trus_hf.evaluation import of_label

    gland, lesion = of_label(rows, "gland"), of_label(rows, "lesion")
    bearing = [r for r in lesion if r["target_area"] > 0]
    free = [r for r in lesion if r["target_area"] == 0]
    mean = lambda rs, k: float(np.mean([r[k] for r in rs])) if rs else float("nan")  # noqa: E731
    return {
        "gland_iou": mean(gland, "iou"),
        "gland_dice": mean(gland, "dice"),
        "lesion_iou": mean(lesion, "iou"),
        "lesion_iou_bearing": mean(bearing, "iou"),
        "lesion_dice_bearing": mean(bearing, "dice"),
        "lesions_found": float(np.mean([r["tp"] > 0 for r in bearing])) if bearing else float("nan"),
        "lesion_free_marked": float(np.mean([r["pred_area"] > 0 for r in free])) if free else float("nan"),
        "n_bearing": len(bearing),
        "n_free": len(free),
    }


def cmd_evaluate(a) -> None:
    from trus_hf import SegmentationPipeline
    from trus_hf.demo import demo_model_paths
    from trus_hf.evaluation import evaluate_dataset

    ds, meta = load_frames(Path(a.data))
    models = {}
    for root in a.models:
        found = {f"{Path(root).name}/{k}": v for k, v in demo_model_paths(root).items()} or {
            Path(root).name: Path(root)
        }
        for name, path in found.items():
            models[str(path) if name in models else name] = path  # two folders of one name stay two rows
    print(f"{len(ds)} simulated frames ({sum(r['n_lesions'] > 0 for r in meta)} with a lesion)")
    head = "| model | threshold | gland IoU / Dice | lesion IoU, all frames | lesion-bearing: IoU / Dice, found |"
    print(head + " lesion-free marked |\n|" + "---|" * 6)
    out, tiles = [], []
    for name, path in models.items():
        for threshold in (None, 0.5):
            pipe = SegmentationPipeline.from_pretrained(path, device="cpu", threshold=threshold)
            s = summary(evaluate_dataset(pipe, ds, desc=name))
            if a.figure and threshold is None:
                tiles.append(_figure_row(pipe, ds, meta, a.figure_frames))
            out.append({"model": name, "threshold": threshold or "tuned", **s})
            print(
                f"| {name} | {threshold or 'tuned'} | {s['gland_iou']:.3f} / {s['gland_dice']:.3f} | "
                f"{s['lesion_iou']:.3f} | {s['lesion_iou_bearing']:.3f} / {s['lesion_dice_bearing']:.3f}, "
                f"{s['lesions_found']:.0%} of {s['n_bearing']} | {s['lesion_free_marked']:.0%} of {s['n_free']} |",
                flush=True,
            )
    if a.json:
        write_json(a.json, out)
    if a.figure:
        picture = np.vstack(tiles)
        Path(a.figure).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(a.figure), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]):
            raise SystemExit(f"could not write the figure to {a.figure} (a .jpg or .png name?)")
        print(f"figure: {a.figure} (one row per model, {a.figure_frames} lesion-bearing frames, tuned settings)")


def _figure_row(pipe, ds, meta: list[dict], n: int) -> np.ndarray:
    """The model's masks on the first ``n`` lesion-bearing frames: predicted gland blue and lesion red (filled),
    the truth as green outlines (`trus_hf.visualization.overlay`)."""
    from trus_hf.visualization import overlay

    index = {name: i for i, name in enumerate(ds["file"])}
    row, signal = [], []
    for r in [r for r in meta if r["n_lesions"] > 0][:n]:
        ex = ds[index[Path(r["file_name"]).name]]
        image = np.asarray(ex["image"].convert("L"))
        truth = {k: np.asarray(ex[f"mask_{k}"]) > 0 for k in ("gland", "lesion")}
        row.append(overlay(image, pipe(image).masks, truth))
        signal.append(image.max(axis=1) > 8)
    rows = np.flatnonzero(np.any(signal, axis=0))  # the fans' rows only: the same frames give every model one crop
    return np.hstack(row)[rows.min() : rows.max() + 1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("simulate")
    s.add_argument("--n", type=int, default=24)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--out", default=str(ROOT / "runs" / "pymust_trus"))
    s.add_argument("--workers", type=int, default=1)
    e = sub.add_parser("evaluate")
    e.add_argument("--data", default=str(ROOT / "runs" / "pymust_trus"))
    e.add_argument(
        "--models",
        nargs="+",
        default=[str(ROOT / "trus_hf" / "demo_models")],
        help="model folders, or folders of model folders (the bundled models by default)",
    )
    e.add_argument("--json", default=None, help="also write the figures here")
    e.add_argument("--figure", default=None, help="also write a picture of the masks here (.jpg or .png)")
    e.add_argument("--figure-frames", type=int, default=6, help="lesion-bearing frames in the picture")
    a = p.parse_args()
    (cmd_simulate if a.cmd == "simulate" else cmd_evaluate)(a)


if __name__ == "__main__":
    main()
