"""Gland + lesion (issue 14): per-label figures of the bundled models on held-out phantoms, and what
``lesion_within_gland`` changes, both settings side by side in one run on the same frames.

    python benchmarks/labels.py [--n 60] [--models fpn segformer]

Held-out sets: phantoms of the training settings with unseen seeds (``default``), settings outside the training ranges
(``shifted``) and the ``hard`` preset, at the demo models' phantom size. Per model, set and setting: mean gland IoU and
Dice, mean lesion IoU and Dice, and the false lesion pixels outside the true gland (mean per frame, and the share of
frames that have any). The masks are the pipeline's at the original resolution (threshold 0.5).
"""

import argparse

import numpy as np

from trus_hf import SegmentationPipeline, load_model
from trus_hf.demo import DEMO_MODELS_DIR, PHANTOM_SIZE
from trus_hf.metrics import binary_metrics
from trus_hf.synthetic import generate_phantom

SETS = {"default": 900_000, "shifted": 910_000, "hard": 920_000}  # the seeds of the cards' held-out phantoms


def measure(pipe: SegmentationPipeline, phantoms) -> dict:
    rows = []
    for ph, res in zip(phantoms, pipe.predict([ph.image for ph in phantoms])):
        gland, lesion = ph.gland_mask.astype(bool), ph.lesion_mask.astype(bool)
        g, le = binary_metrics(res.masks["gland"], gland), binary_metrics(res.masks["lesion"], lesion)
        outside = int((res.masks["lesion"] & ~gland).sum())
        rows.append((g["iou"], g["dice"], le["iou"], le["dice"], outside, outside > 0))
    a = np.array(rows, dtype=np.float64)
    keys = ("gland_iou", "gland_dice", "lesion_iou", "lesion_dice", "lesion_px_outside_gland", "frames_with_outside")
    return dict(zip(keys, a.mean(axis=0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60, help="phantoms per set")
    ap.add_argument("--models", nargs="+", default=["fpn", "segformer"])
    a = ap.parse_args()
    data = {name: [generate_phantom(seed + i, PHANTOM_SIZE, name) for i in range(a.n)] for name, seed in SETS.items()}
    print(f"{a.n} held-out phantoms per set, {PHANTOM_SIZE[1]}x{PHANTOM_SIZE[0]}; per setting: gland IoU / Dice, "
          "lesion IoU / Dice, lesion pixels outside the true gland per frame (share of frames with any)")  # fmt: skip
    for model_name in a.models:
        model, proc = load_model(DEMO_MODELS_DIR / model_name)
        for set_name, phantoms in data.items():
            for within in (False, True):
                pipe = SegmentationPipeline(model, proc, device="cpu", lesion_within_gland=within)
                m = measure(pipe, phantoms)
                print(
                    f"  {model_name:9} {set_name:8} lesion_within_gland={str(within):5}: gland {m['gland_iou']:.3f} / "
                    f"{m['gland_dice']:.3f}, lesion {m['lesion_iou']:.3f} / {m['lesion_dice']:.3f}, outside "
                    f"{m['lesion_px_outside_gland']:.0f} px ({m['frames_with_outside']:.0%})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
